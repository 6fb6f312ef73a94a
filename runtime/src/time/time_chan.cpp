// Time channels (time.hpp): timers that feed channels, and AfterFunc timers that spawn fibers.
//
// A TimeChanState is owned by its channel (ChanCore::set_on_destroy): the heap only points at
// its TimerNode. The node's fire runs under the heap lock and offers the time to the channel
// (capacity 1, never blocking), so the only lock taken under the heap lock is the channel's:
// the order is heap -> channel. stop/reset serialise on the state's own mutex, then cancel
// (heap lock, released), then drain the channel (channel lock, released), then re-add (heap
// lock): no two of those locks are ever held together. Because cancel() returns only once a
// fire in progress has finished, no value from before a stop/reset can arrive after it.
//
// Fields written by stop/reset (node.when, period) are written while the node is out of the
// heap; the heap lock orders them before the next fire reads them.
//
// A FuncTimerState is reference counted: one reference per FuncTimer handle, plus one held by
// the heap while the node is queued, which fire passes on to the fiber it spawns (so the
// callable outlives its run even if every handle is gone).
#include <spindle/time.hpp>

#include <mutex>

#include <spindle/runtime.hpp>

#include "sched/scheduler.hpp"
#include "time/timer_heap.hpp"

namespace spindle::detail {

struct TimeChanState {
  TimerNode node;
  Scheduler* sched = nullptr;
  ChanCore* chan = nullptr;      // owns this state
  Duration period{};             // > 0: a ticker
  std::mutex mu;                 // serialises stop/reset
};

struct FuncTimerState {
  TimerNode node;
  Scheduler* sched = nullptr;
  std::mutex mu;
  std::atomic<int> refs{1};
  FuncBox box{};
};

namespace {

Scheduler* require_runtime(const char* what) {
  Scheduler* s = current_scheduler();
  if (s == nullptr) {
    throw RuntimeError(std::string("spindle::") + what + ": no runtime is running");
  }
  return s;
}

// The timer heap this state's node lives in, if its runtime is still the running one.
Scheduler* live_sched(Scheduler* s) noexcept { return current_scheduler() == s ? s : nullptr; }

void add_timer(Scheduler* s, TimerNode* node) { s->add_timer(node); }

bool fire_time_chan(TimerNode* t) noexcept {
  auto* s = static_cast<TimeChanState*>(t->owner);
  TimePoint now = spindle::now();  // virtual in a synctest bubble, as t->when is
  (void)chan_offer(s->chan, &now);  // full: a slow receiver misses this tick
  if (s->period <= Duration::zero()) return false;
  // Next tick on the period grid, skipping the ones already missed (Go's ticker does the same).
  const Duration behind = now - t->when;
  t->when += s->period * (1 + behind / s->period);
  return true;
}

void destroy_time_chan(void* arg) noexcept {
  auto* s = static_cast<TimeChanState*>(arg);
  // Returns once a fire in progress has finished; then nothing refers to the node.
  if (Scheduler* sched = live_sched(s->sched)) (void)sched->timers_.cancel(&s->node);
  delete s;
}

bool fire_func_timer(TimerNode* t) noexcept {
  auto* s = static_cast<FuncTimerState*>(t->owner);
  // The heap's reference passes to the fiber.
  auto body = [s] {
    struct Release {
      FuncTimerState* s;
      ~Release() { func_timer_release(s); }
    } release{s};
    s->box.call(s->box.fn);
  };
  (void)spawn(SpawnOptions{.name = "after_func"}, make_callable(body));
  return false;
}

}  // namespace

ChanCore* make_time_chan(Duration first, Duration period, TimeChanState** state) {
  Scheduler* sched = require_runtime(period > Duration::zero() ? "Ticker" : "Timer");
  auto st = std::make_unique<TimeChanState>();
  ChanCore* c = ChanCore::create(&kElemOps<TimePoint>, 1);
  st->sched = sched;
  st->chan = c;
  st->period = period;
  st->node.fire = &fire_time_chan;
  st->node.owner = st.get();
  st->node.when = deadline_after(first);
  c->set_on_destroy(&destroy_time_chan, st.get());
  *state = st.release();
  add_timer(sched, &(*state)->node);
  return c;
}

bool time_chan_stop(TimeChanState* s) noexcept {
  std::lock_guard lock(s->mu);
  bool pending = false;
  if (Scheduler* sched = live_sched(s->sched)) pending = sched->timers_.cancel(&s->node);
  // Go 1.23: the channel is synchronous, so a fired but unreceived value was never delivered.
  if (chan_drain(s->chan)) pending = true;
  return pending;
}

bool time_chan_reset(TimeChanState* s, Duration first, Duration period) noexcept {
  std::lock_guard lock(s->mu);
  Scheduler* sched = live_sched(s->sched);
  bool pending = sched != nullptr && sched->timers_.cancel(&s->node);
  if (chan_drain(s->chan)) pending = true;
  if (sched == nullptr) return pending;
  if (period > Duration::zero()) s->period = period;
  s->node.when = deadline_after(first);
  add_timer(sched, &s->node);
  return pending;
}

FuncTimerState* make_func_timer(Duration d, FuncBox box) {
  Scheduler* sched = require_runtime("after_func");
  auto* s = new FuncTimerState();
  s->sched = sched;
  s->box = box;
  s->refs.store(2, std::memory_order_relaxed);  // the handle, and the heap
  s->node.fire = &fire_func_timer;
  s->node.owner = s;
  s->node.when = deadline_after(d);
  add_timer(sched, &s->node);
  return s;
}

bool func_timer_stop(FuncTimerState* s) noexcept {
  std::lock_guard lock(s->mu);
  Scheduler* sched = live_sched(s->sched);
  if (sched == nullptr || !sched->timers_.cancel(&s->node)) return false;
  s->refs.fetch_sub(1, std::memory_order_relaxed);  // the heap's; the caller's handle remains
  return true;
}

bool func_timer_reset(FuncTimerState* s, Duration d) noexcept {
  std::lock_guard lock(s->mu);
  Scheduler* sched = live_sched(s->sched);
  if (sched == nullptr) return false;
  const bool pending = sched->timers_.cancel(&s->node);
  if (!pending) s->refs.fetch_add(1, std::memory_order_relaxed);  // the heap's, again
  s->node.when = deadline_after(d);
  add_timer(sched, &s->node);
  return pending;
}

void func_timer_retain(FuncTimerState* s) noexcept { s->refs.fetch_add(1, std::memory_order_relaxed); }

void func_timer_release(FuncTimerState* s) noexcept {
  if (s->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  s->box.destroy(s->box.fn);
  delete s;
}

}  // namespace spindle::detail

namespace spindle {

Receiver<TimePoint> after(Duration d) {
  detail::TimeChanState* s = nullptr;
  return Chan<TimePoint>::detail_adopt(detail::make_time_chan(d, Duration::zero(), &s));
}

Receiver<TimePoint> tick(Duration d) {
  if (d <= Duration::zero()) return {};
  detail::TimeChanState* s = nullptr;
  return Chan<TimePoint>::detail_adopt(detail::make_time_chan(d, d, &s));
}

Timer::Timer(Duration d) {
  c_ = Chan<TimePoint>::detail_adopt(detail::make_time_chan(d, Duration::zero(), &state_));
}

Ticker::Ticker(Duration d) {
  if (d <= Duration::zero()) throw Panic("non-positive interval for NewTicker");
  c_ = Chan<TimePoint>::detail_adopt(detail::make_time_chan(d, d, &state_));
}

void Ticker::reset(Duration d) {
  if (d <= Duration::zero()) throw Panic("non-positive interval for Ticker.Reset");
  if (state_ == nullptr) throw ChanError("spindle: Ticker.Reset called on uninitialized Ticker");
  (void)detail::time_chan_reset(state_, d, d);
}

}  // namespace spindle
