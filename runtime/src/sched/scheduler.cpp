#include "sched/scheduler.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include <spindle/debug.hpp>
#include <spindle/errors.hpp>

#include "diag/report.hpp"
#include "diag/synctest.hpp"
#include "diag/trace.hpp"
#include "diag/watchdog.hpp"
#include "fiber/overflow.hpp"
#include "os/futex.hpp"
#include "os/prefetch.hpp"
#include <spindle/detail/spinlock.hpp>

namespace spindle::detail {
namespace {

std::atomic<Scheduler*> g_sched{nullptr};
thread_local Worker* t_worker = nullptr;
std::atomic<std::uint64_t> g_next_fiber_id{1};
// Ids a worker takes from g_next_fiber_id at once (Go's goidcacheBatch): a locked add per spawn
// waited for the previous spawn's stores to cold record lines to drain, 8% of spawn+join at 2
// workers. Ids stay unique and small; across workers they are no longer in spawn order.
constexpr std::uint64_t kIdBatch = 16;

std::uint64_t next_fiber_id(Worker* w) noexcept {
  if (w == nullptr) return g_next_fiber_id.fetch_add(1, std::memory_order_relaxed);
  if (w->next_id_ == w->id_limit_) {
    w->next_id_ = g_next_fiber_id.fetch_add(kIdBatch, std::memory_order_relaxed);
    w->id_limit_ = w->next_id_ + kIdBatch;
  }
  return w->next_id_++;
}

constexpr int kStealRounds = 4;              // Go's stealTries
constexpr std::size_t kStackCacheMax = 128;  // per-worker recycled stacks (empirical)
// Stacks move between a worker's cache and the shared pool in batches (Go moves its free Gs
// between P and scheduler 32 at a time): with stealing, one worker spawns and another retires,
// and a lock per stack made the pool's mutex the bottleneck of spawn+join.
constexpr std::size_t kStackBatch = 32;
constexpr std::size_t kExitedBatch = 32;  // fibers unregistered elsewhere per batch
constexpr std::uint64_t kGlobalFairnessTick = 61;  // Go: check the global queue every 61 ticks
constexpr auto kRunNextPoll = std::chrono::microseconds(500);
// An idle worker never sleeps indefinitely while another runs a fiber: hand-offs (run_next) and
// yields queue work on the busy worker without waking anyone, and if that fiber then runs long
// without switching, what queued behind it would wait for it (a fiber yielding until another
// gets going, queued behind that very fiber, waited forever: seen under TSan with two workers).
// Go's sysmon preempts such a goroutine; a fiber cannot be preempted, so idle workers look
// (Worker::sleep_idle), every 1 ms and backing off to 16 ms while they find nothing.
constexpr auto kBusyPeerPollMin = std::chrono::milliseconds(1);
constexpr int kBusyPeerPollMaxShift = 4;
// A queue this short is not stolen from a worker that keeps switching, until it has not switched
// for kStallPatience (Worker::stalled), which is shorter than a spinning thief's kIdleSpin. Two
// kept three communicating fibers together; eight also makes thieves take bigger batches from a
// spawning loop (spawn+join at 2 workers, far vCPUs: 577 -> 508 ns; 4x4 MPMC 27.9 -> 16.0 ns).
// The price: up to eight fibers queued behind a worker that keeps switching (a ping-pong pair)
// wait for its fairness picks while another worker idles; Go would steal them.
constexpr std::uint32_t kKeepQueued = 8;
constexpr auto kStallPatience = std::chrono::microseconds(10);
constexpr auto kIdleSpin = std::chrono::microseconds(20);  // see Worker::spin_for_work
constexpr int kMaxSpinPauses = 512;  // ~10 us between a spinning worker's looks, at most

int default_worker_count(const Options& opts) {
  if (opts.workers > 0) return opts.workers;
  if (const char* env = std::getenv("SPINDLE_WORKERS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

constexpr std::size_t kRecordColours = 8;  // record offsets from a stack's top (fiber.hpp)

char* align_down(char* p, std::size_t a) {
  return reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) & ~(a - 1));
}

// What a parked fiber reads first when it resumes, without reading anything of it (it may be
// stolen and finish meanwhile, and an unstarted record's memory may be unmapped; prefetches
// never fault): the record's first two lines (all that a resume and an exit touch: fiber.hpp),
// its FiberRun just below (Fiber::run()), and the innermost frames below that down to
// kResumeWindow, where a fiber blocked in a channel operation or a sleep has its saved
// registers (measured in the LTO build: 928 bytes below the record for a channel receive, 960
// for a context's done() receive, 704 for a sleep; 976, 1,008 and 736 without LTO). Deeper waits
// still get their saved registers fetched, late, by prefetch_saved_frames; a wider window
// fetched lines nobody reads (parked_1m wake at 2 workers, medians of 9: 1,280 bytes 321 vs
// 1,088 311 ms without LTO; with LTO 1,088 295, 1,024 287, 960 284 ms).
constexpr std::size_t kResumeWindow = 960;
constexpr std::size_t kRecordHotBytes = 2 * kCacheLine;
static_assert(offsetof(Fiber, fn) + sizeof(Callable) <= kRecordHotBytes);

void prefetch_resume_window(const Fiber* f) noexcept {
  const char* top = reinterpret_cast<const char*>(f) + kRecordHotBytes;
  for (const char* p = reinterpret_cast<const char*>(f) - kResumeWindow; p < top; p += kCacheLine) {
    prefetch_line(p);
  }
}

TraceEnd trace_end(AfterSwitch a) noexcept {
  switch (a) {
    case AfterSwitch::park: return TraceEnd::park;
    case AfterSwitch::yield: return TraceEnd::yield;
    case AfterSwitch::exit: return TraceEnd::exit;
    case AfterSwitch::none: break;
  }
  return TraceEnd::other;
}

// The body of every fiber. It never returns: it leaves through a final switch.
void fiber_main(void* data) {
  auto* f = static_cast<Fiber*>(data);
  Worker::finish_arrival();
  try {
    f->fn.invoke(f->fn.src);
  } catch (...) {
    die_uncaught_exception(f, std::current_exception());
  }
  f->fn.destroy(f->fn.src);
  Worker* w = current_worker();
  w->after_ = AfterSwitch::exit;
  w->switch_away(f, /*exits=*/true);
  __builtin_unreachable();
}

}  // namespace

Scheduler* current_scheduler() noexcept { return g_sched.load(std::memory_order_acquire); }
Worker* current_worker() noexcept { return t_worker; }
Fiber* current_fiber() noexcept {
  Worker* w = t_worker;
  return w != nullptr ? w->current_.load(std::memory_order_relaxed) : nullptr;
}

// ---------------------------------------------------------------------------------------------
// Worker

Worker::Worker(Scheduler& sched, int index)
    : sched_(sched), index_(index), rng_(0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(index + 1)) {}

std::uint32_t Worker::next_random() noexcept {
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 7;
  rng_ ^= rng_ << 17;
  return static_cast<std::uint32_t>(rng_ >> 32);
}

void Worker::loop() {
  t_worker = this;
  if (trace_on()) [[unlikely]] trace_worker_start(index_);
  init_thread_context(sched_ctx_);
  AltSignalStack alt;  // the overflow handler runs on it
  relayed_signals_.apply();
  round_ticks_ = Clock::now().time_since_epoch().count();
  while (Fiber* f = find_runnable()) run(f);
  flush_exited();
  relayed_signals_.restore();  // worker 0 is the thread that called run()
  t_worker = nullptr;
}

void Worker::run(Fiber* f) {
  if (!f->started) [[unlikely]] f = sched_.start_unstarted(*this, f);
  // Many woken fibers (a wide cancel, timers firing, a fan-in) resume on cold stacks. Fetch
  // f's saved frames now, late but better than at the switch, and the lines of the fibers
  // likely to run after it (a stale pointer is harmless: prefetches never fault).
  FiberRun& run = f->run();
  prefetch_saved_frames(run.ctx);
  // The canary (unguarded stacks) lies in the region below, a line nothing else of f touches:
  // checked when f exits, a miss then, unless fetched now (null for a guarded stack).
  __builtin_prefetch(run.stack.canary);
  // A first run (entry set) is a spawn, whose successor is likely a spawn too, its lines just
  // written by the spawning worker: reading them ahead of that worker's writes costs both
  // (spawn+join at 2 workers, 4%), so only its record is fetched. After a resume, the successor
  // is likely a woken fiber too, all of its lines cold: its resume window, and the record of
  // the one after it, whose page walk then overlaps this fiber's run.
  if (const Fiber* next = runq_.peek_newest()) {
    if (run.ctx.entry != nullptr) {
      __builtin_prefetch(next);
    } else {
      prefetch_resume_window(next);
      if (const Fiber* after = runq_.peek_newest(1)) prefetch_line(after);
    }
  }
  begin_run(f);
  if (trace_on()) [[unlikely]] trace_run_begin(index_, f);
  switch_to(sched_ctx_, run.ctx, f);
  // A fiber switched back to us: it parked, yielded or finished. Not necessarily `f`: fibers
  // may have handed this worker on to each other directly (switch_away). (Traced before
  // after_switch releases the primitive's lock: until then nobody can ready it and change its
  // wait fields.)
  Fiber* back = current_.load(std::memory_order_relaxed);
  if (trace_on()) [[unlikely]] trace_run_end(index_, back, trace_end(after_));
  after_switch(back);
  current_.store(nullptr, std::memory_order_relaxed);
}

void Worker::begin_run(Fiber* f) noexcept {
  current_.store(f, std::memory_order_relaxed);
  f->last_worker = index_;
  ++tick_;
  // Counters with one writer: a load and a store, no locked instruction (read by stats, the
  // watchdog and run_next thieves).
  switches_.store(switches_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// A hand-off (a channel send to a parked receiver, a spawn) leaves the woken fiber in run_next,
// and the waker usually parks or exits next. Going through the scheduler loop for it costs a
// second switch and a find_runnable; Go pays that too (park_m runs schedule() on g0). So the
// leaving fiber switches straight to run_next, and the arriving one does the leaver's
// after_switch first thing (finish_arrival). Only when the loop has nothing periodic to do: it
// still runs every 8th pick, so timers, the global queue and the network are looked at as
// before.
Fiber* Worker::direct_successor() noexcept {
  if ((tick_ & 7) == 0 || tick_ % kGlobalFairnessTick == 0) return nullptr;
  if (trace_on() || sched_.stopping_.load(std::memory_order_relaxed)) return nullptr;
  Fiber* next = runq_.take_run_next();
  if (next != nullptr && !next->started) {  // unstarted: the loop gives it a stack
    runq_.push_next(next);  // thieves only take: the slot is still empty
    return nullptr;
  }
  return next;
}

void Worker::switch_away(Fiber* f, bool exits) {
  // The main fiber's exit ends the program: nothing else may run after it.
  Fiber* next = exits && f->id == sched_.main_id_ ? nullptr : direct_successor();
  if (next != nullptr) {
    switched_from_ = f;
    begin_run(next);
    switch_to(f->run().ctx, next->run().ctx, next, exits);
  } else {
    switch_to(f->run().ctx, sched_ctx_, nullptr, exits);
  }
  // Resumed (`this` may be another thread's worker now: not touched again).
  finish_arrival();
}

void Worker::finish_arrival() noexcept {
  Worker* w = current_worker();
  Fiber* from = w->switched_from_;
  if (from == nullptr) return;
  w->switched_from_ = nullptr;
  w->after_switch(from);
}

void Worker::after_switch(Fiber* f) {
  const AfterSwitch what = after_;
  // The canary of an unguarded stack sits in the region below, a cache line this worker rarely
  // has: checked at exit and every 8th switch (a guarded stack's guard page needs no check).
  if ((what == AfterSwitch::exit || (tick_ & 7) == 0) && !f->run().stack.canary_intact()) {
    die_stack_overflow(f, "its stack canary was overwritten");
  }
  after_ = AfterSwitch::none;
  switch (what) {
    case AfterSwitch::yield:
      sched_.ready_runnable(*this, f);
      fifo_next_ = true;
      break;
    case AfterSwitch::park: {
      parks_.store(parks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      ParkRequest req = park_req_;
      park_req_ = {};
      if (req.waiter->claimers() != Waiter::Claimers::anyone) {
        // Only a later holder of these locks can claim it (park.hpp): parked before they are free.
        f->park_state.store(ParkState::parked, std::memory_order_relaxed);
        req.opts->unlock(req.opts->unlock_arg);  // releases the store with the lock
        break;
      }
      // Only now, with the fiber off its stack, may a waker see it (park.hpp).
      if (req.opts->unlock != nullptr) req.opts->unlock(req.opts->unlock_arg);
      if (req.timer != nullptr && sched_.timers_.add(req.timer, index_)) sched_.on_timer_earlier();
      if (const Interrupt* in = req.opts->interrupt) in->arm(in->self, *req.waiter);
      ParkState expected = ParkState::running;
      if (!f->park_state.compare_exchange_strong(expected, ParkState::parked,
                                                 std::memory_order_acq_rel)) {
        // ready() came while it was parking: it runs again, next.
        f->park_state.store(ParkState::running, std::memory_order_relaxed);
        sched_.enqueue(f, /*next=*/true);
      }
      break;
    }
    case AfterSwitch::exit:
      sched_.recycle(*this, f);
      break;
    case AfterSwitch::none:
      die_broken_invariant(f, "a fiber switched to its worker without saying why");
  }
}

Fiber* Worker::find_runnable() {
  auto found = [this](Fiber* f) {
    if (spinning_) stop_spinning(/*found_work=*/true);
    return f;
  };
  for (;;) {
    if (sched_.stopping_.load(std::memory_order_acquire)) return nullptr;
    // Every kGlobalFairnessTick picks: has anything waited too long (kStarvationLimit)?
    const bool fairness_look = tick_ % kGlobalFairnessTick == 0;
    bool ring_starved = false;
    if (fairness_look) {
      const TimePoint now = Clock::now();
      round_ticks_ = now.time_since_epoch().count();
      const RunQueue::Oldest oldest = runq_.oldest();
      ring_starved = oldest.fiber != nullptr && ring_watch_.starved(oldest, now);
      std::array<bool, 2> spilled_starved{};
      for (std::size_t k = 0; k < spilled_starved.size(); ++k) {
        spilled_starved[k] = spilled_watch_[k].starved(
            sched_.spilled_[k].front_changes.load(std::memory_order_relaxed), now);
      }
      if (!sched_.global_empty()) {
        if (Fiber* f = sched_.global_pop_fair(*this, spilled_starved)) return found(f);
      }
    }
    // This worker's timers every 8th pick; every heap now and then, in case a worker busy in
    // one long fiber holds due timers (idle workers fire those too).
    if (fairness_look || (tick_ & 7) == 0) sched_.check_timers(index_, fairness_look);
    // Busy workers still look at the network now and then (Go's sysmon does it every 10 ms),
    // or fibers waiting on I/O would starve behind fibers that only yield.
    if (fairness_look) sched_.poll_network();
    // LIFO normally (run_queue.hpp); FIFO after a yield (round-robin among yielders) and when
    // the oldest entry has waited too long.
    const bool fair_pick = ring_starved;
    const bool yielded = fifo_next_;
    const bool fifo = yielded || fair_pick;
    fifo_next_ = false;
    // A yield lets the global queue go first, as Go's Gosched does (it queues the yielder
    // there): a fiber yielding in a loop until others have run would otherwise keep its worker
    // from the spilled backlog, which it only takes when its own queue runs dry.
    if (yielded && !sched_.global_empty()) {
      if (Fiber* f = sched_.global_pop(*this)) return found(f);
    }
    if (Fiber* f = runq_.pop(fifo, /*ring_first=*/fair_pick)) return found(f);
    if (!sched_.global_empty()) {
      if (Fiber* f = sched_.global_pop(*this)) return found(f);
    }
    if (sched_.check_timers(index_, /*every_heap=*/true) > 0) {
      if (Fiber* f = runq_.pop()) return found(f);
    }
    if (sched_.poll_network()) {  // it readies fibers to the global queue, in order
      if (Fiber* f = sched_.global_pop(*this)) return found(f);
    }
    if (!spinning_) {
      const int busy = static_cast<int>(sched_.workers_.size()) - sched_.nidle_.load(std::memory_order_seq_cst);
      if (2 * sched_.nspinning_.load(std::memory_order_seq_cst) < busy) {
        spinning_ = true;
        sched_.nspinning_.fetch_add(1, std::memory_order_seq_cst);
      }
    }
    if (spinning_) {
      for (int round = 0; round < kStealRounds; ++round) {
        if (Fiber* f = steal(/*steal_run_next=*/false)) return found(f);
      }
      // Keep looking for a few microseconds before sleeping. Communicating fibers on two
      // workers make each run dry and get fed again within microseconds; a futex sleep and
      // wake-up costs both sides more than that (select over unbuffered channels spent a
      // quarter of its time in the kernel). While this worker spins, nobody wakes another.
      if (Fiber* f = spin_for_work()) return found(f);
    }
    if (!sleep_idle()) return nullptr;
  }
}

Fiber* Worker::spin_for_work() {
  if (sched_.workers_.size() <= 1) return nullptr;  // nobody else can make work appear here
  const TimePoint until = Clock::now() + kIdleSpin;
  // Each look reads the victims' queue words, which their owners write at every hand-off: a
  // look between two hand-offs costs the owner a cache-line round trip (~330 ns when the vCPUs
  // are far apart). Looking every microsecond, select over unbuffered channels at 2 workers
  // took 217 ns a message instead of 132; so the looks back off, 32 pauses doubling to 512.
  int pauses = 32;
  for (;;) {
    for (int k = 0; k < pauses; ++k) spin_pause();
    if (pauses < kMaxSpinPauses) pauses *= 2;
    if (!sched_.global_empty()) {
      if (Fiber* f = sched_.global_pop(*this)) return f;
    }
    if (Fiber* f = steal(/*steal_run_next=*/false)) return f;
    if (sched_.stopping_.load(std::memory_order_relaxed)) return nullptr;
    if (Clock::now() >= until) return nullptr;
  }
}

void Worker::stop_spinning(bool found_work) {
  spinning_ = false;
  // The last spinner to find work wakes another, so work queued meanwhile is not left waiting
  // for this worker to finish what it found (Go: resetspinning).
  if (sched_.nspinning_.fetch_sub(1, std::memory_order_seq_cst) == 1 && found_work) {
    sched_.wake_idle_worker();
  }
  if (found_work) busy_peer_polls_ = 0;
}

Fiber* Worker::steal(bool steal_run_next) {
  const auto n = static_cast<std::uint32_t>(sched_.workers_.size());
  if (n <= 1) return nullptr;
  std::uint32_t start = next_random() % n;
  for (std::uint32_t i = 0; i < n; ++i) {
    Worker* victim = sched_.workers_[(start + i) % n].get();
    if (victim == this) continue;
    if (!steal_run_next && victim->runq_.size() <= kKeepQueued && !stalled(*victim)) continue;
    Fiber* batch[RunQueue::kSize / 2 + 1];
    std::uint32_t got = victim->runq_.grab(batch, steal_run_next);
    if (got == 0) continue;
    for (std::uint32_t k = 1; k < got; ++k) sched_.push_local(*this, batch[k]);
    sched_.steals_.fetch_add(1, std::memory_order_relaxed);
    if (trace_on()) [[unlikely]] trace_steal(index_, victim->index_, got);
    return batch[0];
  }
  return nullptr;
}

bool Worker::stalled(const Worker& victim) {
  if (victim_views_.size() <= static_cast<std::size_t>(victim.index_)) {
    victim_views_.resize(sched_.workers_.size());
  }
  VictimView& view = victim_views_[static_cast<std::size_t>(victim.index_)];
  const std::uint64_t switches = victim.switches_.load(std::memory_order_relaxed);
  const TimePoint now = Clock::now();
  if (switches != view.switches) {
    view.switches = switches;
    view.since = now;
    return false;
  }
  if (now - view.since < kStallPatience) return false;
  view.since = now;  // and the next of its short queue only after as long again
  return true;
}

void Worker::unregister_later(Fiber* f) {
  exited_elsewhere_.push_back(f);
  if (exited_elsewhere_.size() >= kExitedBatch) flush_exited();
}

void Worker::flush_exited() {
  if (exited_elsewhere_.empty()) return;
  sched_.registry_.remove_batch(exited_elsewhere_.data(), exited_elsewhere_.size());
  for (Fiber* f : exited_elsewhere_) {
    if (!f->started) Scheduler::delete_unstarted(f);  // a record left by start_unstarted
    else sched_.free_fiber(*this, f);
  }
  exited_elsewhere_.clear();
}

bool Worker::sleep_idle() {
  flush_exited();  // an idle worker holds no finished fiber's stack
  const bool was_spinning = spinning_;
  wake_word_.store(0, std::memory_order_seq_cst);
  {
    std::lock_guard lock(sched_.idle_mu_);
    sched_.idle_.push_back(this);
    sched_.nidle_.fetch_add(1, std::memory_order_seq_cst);
  }
  if (was_spinning) {
    spinning_ = false;
    sched_.nspinning_.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Re-check after publishing ourselves idle: work queued before that is seen here; work queued
  // after it sees us in the idle list and wakes us. Signals newly relayed likewise.
  relayed_signals_.refresh();
  bool retry = sched_.any_work_visible(*this);
  TimePoint deadline = sched_.timers_.next();
  std::uint64_t victim_switches = 0;
  Worker* run_next_victim = nullptr;
  if (!retry && sched_.workers_.size() > 1) {
    // Fibers in another worker's run_next slot or short ring (which spinning thieves leave to
    // it, Worker::stalled) wait for that worker to get to them; if it is busy for long, steal
    // them (Go's thieves take runnext after ~3 us). Poll for that, not indefinitely.
    bool peer_busy = false;
    for (auto& other : sched_.workers_) {
      if (other.get() == this) continue;
      if (other->runq_.size() > 0) {  // size() counts run_next
        run_next_victim = other.get();
        victim_switches = other->switches_.load(std::memory_order_relaxed);
        deadline = std::min(deadline, Clock::now() + kRunNextPoll);
        break;
      }
      peer_busy = peer_busy || other->current_.load(std::memory_order_relaxed) != nullptr;
    }
    // Nothing queued yet, but a peer is running a fiber: it may queue some without waking us.
    if (run_next_victim == nullptr && peer_busy) {
      deadline = std::min(deadline, Clock::now() + kBusyPeerPollMin * (1 << busy_peer_polls_));
      if (busy_peer_polls_ < kBusyPeerPollMaxShift) ++busy_peer_polls_;
    }
  }
  // A synctest bubble does not sleep while timers are pending: it moves its virtual clock.
  if (!retry && virtual_clock_on()) [[unlikely]] retry = synctest_idle(sched_, deadline);
  if (!retry) sched_.idle_sleeps_.fetch_add(1, std::memory_order_relaxed);
  if (!retry && deadline == kNoDeadline && sched_.check_deadlock(*this)) retry = true;
  if (!retry && !sched_.block_in_poller(*this, deadline)) {
    while (wake_word_.load(std::memory_order_seq_cst) == 0 &&
           !sched_.stopping_.load(std::memory_order_seq_cst)) {
      futex_wait(wake_word_, 0, deadline);
      if (deadline != kNoDeadline && Clock::now() >= deadline) break;
    }
  }
  bool popped_by_waker;
  {
    std::lock_guard lock(sched_.idle_mu_);
    auto it = std::find(sched_.idle_.begin(), sched_.idle_.end(), this);
    popped_by_waker = it == sched_.idle_.end();
    if (!popped_by_waker) {
      sched_.idle_.erase(it);
      sched_.nidle_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  if (popped_by_waker) {
    // wake_idle_worker() took us off the list and counted us as spinning; its store to
    // wake_word_ follows at once.
    while (wake_word_.load(std::memory_order_seq_cst) == 0) spin_pause();
    spinning_ = true;
  }
  if (run_next_victim != nullptr &&
      run_next_victim->switches_.load(std::memory_order_relaxed) == victim_switches) {
    Fiber* batch[RunQueue::kSize / 2 + 1];
    const std::uint32_t got = run_next_victim->runq_.grab(batch, /*steal_run_next=*/true);
    if (got > 0 && trace_on()) [[unlikely]] trace_steal(index_, run_next_victim->index_, got);
    for (std::uint32_t k = 0; k < got; ++k) sched_.push_local(*this, batch[k]);
  }
  round_ticks_ = Clock::now().time_since_epoch().count();  // it may have slept for long
  return !sched_.stopping_.load(std::memory_order_acquire);
}

// ---------------------------------------------------------------------------------------------
// Scheduler

Scheduler::Scheduler(const Options& opts)
    : opts_(opts),
      stacks_(opts.max_guarded_stacks),
      timers_(default_worker_count(opts)),
      registry_(default_worker_count(opts)) {
  const int n = registry_.workers();
  workers_.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
  if (migrating()) global_by_last_worker_.resize(workers_.size());
  std::size_t stack = opts.default_stack_size;
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  stack *= 4;  // sanitizer frames are several times larger (redzones, shadow bookkeeping)
#endif
  default_stack_bytes_ = StackPool::round_size(stack);
}

Scheduler::~Scheduler() {
  // Fibers still alive were abandoned when the main fiber returned (runtime.hpp): free their
  // records; their stacks go with the StackPool. None of them is ever resumed.
  // (Every worker flushed its exited fibers when its loop ended: all registered ones are live.)
  registry_.for_each_registered_unlocked([](Fiber* f) {
    if (f->exited.load(std::memory_order_relaxed)) return;
    if (!f->started) {  // never started: free its record (its callable never ran)
      delete_unstarted(f);
      return;
    }
    destroy_context(f->run().ctx);
    f->~Fiber();  // its memory is its stack's, unmapped with the StackPool
  });
}

Worker::~Worker() = default;

void Scheduler::start_workers() {
  for (std::size_t i = 1; i < workers_.size(); ++i) {
    Worker* w = workers_[i].get();
    w->thread_ = std::thread([w] { w->loop(); });
  }
}

void Scheduler::stop() {
  stopping_.store(true, std::memory_order_seq_cst);
  if (Netpoller* np = netpoller_.load(std::memory_order_acquire)) np->interrupt();
  for (auto& w : workers_) {
    w->wake_word_.store(1, std::memory_order_seq_cst);
    futex_wake(w->wake_word_);
  }
}

std::uint64_t Scheduler::spawn(const SpawnOptions& opts, const Callable& fn, bool is_main) {
  const std::size_t bytes =
      opts.stack_size == 0 ? default_stack_bytes_ : StackPool::round_size(opts.stack_size);
  Worker* w = current_worker();
  if (w != nullptr && &w->sched_ != this) w = nullptr;
  const std::uint64_t id = next_fiber_id(w);
  // When this worker's ring is half full, this fiber will not run soon: it waits without a stack
  // (new_unstarted), so a loop spawning faster than fibers finish costs a small record per
  // fiber, not a resident page (1M spawns queued on one worker held 4 GB, and took as many page
  // faults). When it runs, it takes a stack that a finished fiber left warm: 1,000 fibers
  // spawned on one worker then run touched 1,000 fresh stacks, a quarter of the mutex workload's
  // time. With other workers stealing, the spawner writes records in a row instead of into
  // stack tops last written by the worker where the previous fibers ended, and the thief starts
  // them on its own warm stacks: spawn+join at 2 workers 183 -> 122 ns, 1M parked fibers -13%;
  // 100k timers +7% (faster spawning keeps more sleepers, hence stacks, alive at once).
  const bool backlog = w != nullptr && !is_main && fn.align <= UnstartedArena::kAlign &&
                       w->runq_.size() >= RunQueue::kSize / 2;
  Fiber* f = backlog ? new_unstarted(*w, bytes, fn, id) : nullptr;
  if (f == nullptr) f = place_on_stack(acquire_stack(w, bytes), fn, id);
  const std::size_t name_len = std::min(opts.name.size(), sizeof f->name - 1);
  if (name_len > 0) std::memcpy(f->name, opts.name.data(), name_len);
  f->spawn_site = opts.where;
  registry_.add(f, registry_.shard_of_worker(w != nullptr ? w->index_ : -1));
  if (trace_on()) [[unlikely]] trace_spawn(f);
  if (is_main) main_id_ = id;
  // Like Go's newproc: the newest fiber runs next on this worker, so a spawning loop that then
  // waits runs its children depth-first-ish, keeping few stacks live and caches warm. Except
  // when run_next is taken already: then the new fiber goes on the ring (popped newest first
  // all the same) instead of displacing the one there onto it, one locked exchange fewer per
  // spawn of a spawning loop.
  const bool next = w != nullptr && w->current_.load(std::memory_order_relaxed) != nullptr &&
                    !w->runq_.has_run_next();
  enqueue(f, next);
  return id;
}

Fiber* Scheduler::place_on_stack(const Stack& st, const Callable& fn, std::uint64_t id) {
  // The record lives at the top of the fiber's own stack, the callable just below it: a parked
  // fiber whose frames are shallow costs one resident page and nothing else (Boost.Context's
  // preallocated control block does the same). Both come and go with the stack. The offset
  // from the top is coloured by id (fiber.hpp).
  char* record = align_down(st.hi - sizeof(Fiber) - (id % kRecordColours) * kCacheLine, kCacheLine);
  char* run_state = record - sizeof(FiberRun);  // where Fiber::run() finds it
  char* callable = align_down(run_state - fn.size, std::max<std::size_t>(fn.align, 16));
  char* frames_top = align_down(callable, kCacheLine);
  prepare_stack_top(frames_top, st.hi);
  auto* f = ::new (record) Fiber();
  auto* run = ::new (run_state) FiberRun();
  fn.move_to(callable, fn.src);
  f->fn = fn;
  f->fn.src = callable;
  f->started = true;
  f->stack_region = st.region;
  run->stack = st;
  f->id = id;
  make_context(run->ctx, st.lo, frames_top, &fiber_main);
  if (opts_.stack_high_water) paint_stack(f);
  return f;
}

// An unstarted fiber: its record and callable in one block of the worker's UnstartedArena, no
// stack yet (started false, stack_region the size it will get). Worker::run gives it a stack just
// before its first switch (start_unstarted), by when the worker's cache usually holds a warm one.
// Null when the callable is too large for the arena.
Fiber* Scheduler::new_unstarted(Worker& w, std::size_t stack_bytes, const Callable& fn, std::uint64_t id) {
  static_assert(alignof(Fiber) <= UnstartedArena::kAlign);
  const std::size_t callable_at = (sizeof(Fiber) + fn.align - 1) / fn.align * fn.align;
  auto* block = static_cast<char*>(w.unstarted_arena_.allocate(callable_at + fn.size));
  if (block == nullptr) return nullptr;
  auto* f = ::new (block) Fiber();
  fn.move_to(block + callable_at, fn.src);
  f->fn = fn;
  f->fn.src = block + callable_at;
  f->stack_region = stack_bytes;
  f->id = id;
  return f;
}

void Scheduler::delete_unstarted(Fiber* f) noexcept {
  f->~Fiber();
  UnstartedArena::release(f);
}

Fiber* Scheduler::start_unstarted(Worker& w, Fiber* pending) {
  Fiber* f = place_on_stack(acquire_stack(&w, pending->stack_region), pending->fn, pending->id);
  pending->fn.destroy(pending->fn.src);  // moved from
  std::memcpy(f->name, pending->name, sizeof f->name);  // only the fiber itself renames it
  f->spawn_site = pending->spawn_site;
  const int here = registry_.shard_of_worker(w.index_);
  if (pending->registry_shard == here) {
    registry_.replace(pending, f);
    delete_unstarted(pending);
  } else {
    registry_.move(pending, f, here);
    w.unregister_later(pending);
  }
  return f;
}

Stack Scheduler::acquire_stack(Worker* w, std::size_t bytes) {
  if (w == nullptr || bytes != default_stack_bytes_) return stacks_.allocate(bytes);
  if (w->stack_cache_.empty()) stacks_.allocate_many(bytes, kStackBatch, w->stack_cache_);
  const Stack st = w->stack_cache_.back();  // the most recently freed: its top page is warm
  w->stack_cache_.pop_back();
  return st;
}

void Scheduler::release_stack(Worker& w, const Stack& st) {
  if (st.region != default_stack_bytes_) {
    stacks_.release_many(&st, 1);
    return;
  }
  if (w.stack_cache_.size() >= kStackCacheMax) {
    // Hand the coldest (oldest) half to the pool in one batch, for workers that spawn more
    // than they retire.
    const auto half = static_cast<std::ptrdiff_t>(kStackCacheMax / 2);
    stacks_.release_many(w.stack_cache_.data(), static_cast<std::size_t>(half));
    w.stack_cache_.erase(w.stack_cache_.begin(), w.stack_cache_.begin() + half);
  }
  w.stack_cache_.push_back(st);
}

void Scheduler::free_fiber(Worker& w, Fiber* f) {
  const Stack st = f->run().stack;
  f->run().~FiberRun();
  f->~Fiber();  // the record was on the stack: nothing below may touch f
  release_stack(w, st);
}

void Scheduler::recycle(Worker& w, Fiber* f) {
  const bool was_main = f->id == main_id_;
  if (opts_.stack_high_water) record_high_water(f);
  destroy_context(f->run().ctx);
  // Unregistered or marked exited *before* counted: whoever sees the count drop (num_fibers(),
  // acquire) then finds it gone from dumps too.
  if (f->registry_shard == registry_.shard_of_worker(w.index_)) {
    registry_.remove(f);
    registry_.count_exit(w.index_);
    free_fiber(w, f);
  } else {
    registry_.mark_exited(f);
    registry_.count_exit(w.index_);
    w.unregister_later(f);
  }
  if (was_main) stop();
}

namespace {

// `fifo`: to the global queue's tail (Scheduler::ready_fifo) instead of the caller's worker.
[[gnu::always_inline]] inline void ready_body(Scheduler& sched, Fiber* f, bool next, bool fifo = false) {
  ParkState s = f->park_state.load(std::memory_order_acquire);
  for (;;) {
    if (s == ParkState::parked) {
      if (f->park_state.compare_exchange_weak(s, ParkState::running, std::memory_order_acq_rel)) {
        if (fifo) {
          sched.global_push(f);
          // In force-migration mode only another worker may take it: wake them all, or the one
          // woken may be the only one refusing it (as enqueue() does).
          if (sched.migrating()) sched.wake_all_idle_workers();
          else sched.wake_idle_worker();
        } else {
          sched.enqueue(f, next);
        }
        return;
      }
    } else if (s == ParkState::running) {
      // Still on its stack, parking: its worker requeues it once it is off (after_switch).
      if (f->park_state.compare_exchange_weak(s, ParkState::notified, std::memory_order_acq_rel)) {
        return;
      }
    } else {
      die_broken_invariant(f, "a fiber was readied twice for one park");
    }
  }
}

[[gnu::noinline]] void ready_traced(Scheduler& sched, Fiber* f, bool next) {
  trace_wake(f);
  ready_body(sched, f, next);
}

}  // namespace

void Scheduler::ready_fifo(Fiber* f) {
  if (trace_on()) [[unlikely]] trace_wake(f);
  // A fiber still parking is requeued by its worker once off its stack (after_switch), next on
  // that worker: it had only just parked, nothing readied since can be older.
  ready_body(*this, f, /*next=*/false, /*fifo=*/true);
}

void Scheduler::ready(Fiber* f, bool next) {
  // The traced path is a tail call: a call here would give the hot path a stack frame.
  if (trace_on()) [[unlikely]] return ready_traced(*this, f, next);
  ready_body(*this, f, next);
}

namespace {

// For a fiber whose waiter's claimers hold a lock its park released (Waiter::Claimers): it was
// published as parked before that lock was released (after_switch), and nobody else claims it,
// so there is no race to settle. (Checked: a plain load on a line the store needs anyway.)
void unpark_claimed(Fiber* f) noexcept {
  if (trace_on()) [[unlikely]] trace_wake(f);
  if (f->park_state.load(std::memory_order_relaxed) != ParkState::parked) [[unlikely]] {
    die_broken_invariant(f, "a waiter claimed under its lock was readied before it was parked");
  }
  f->park_state.store(ParkState::running, std::memory_order_relaxed);
}

}  // namespace

void Scheduler::ready_parked(Fiber* f) {
  unpark_claimed(f);
  enqueue(f, /*next=*/true);
}

void Scheduler::ready_parked_many(Fiber* const* fs, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) unpark_claimed(fs[i]);
  Worker* w = current_worker();
  // One alone is a hand-off, as ready_parked makes it (a close of a channel one fiber waits on).
  if (n == 1 || w == nullptr || &w->sched_ != this || migrating()) {
    for (std::size_t i = 0; i < n; ++i) enqueue(fs[i], /*next=*/true);
    return;
  }
  // Readied one at a time, each would take run_next and push the one it displaced (a locked
  // exchange and a ring push), then check for idle workers behind a full fence: a million
  // receivers woken by one close paid that a million times. Pushed oldest first, they are
  // popped in the order those hand-offs gave: the last woken first.
  for (std::size_t done = 0; done < n;) {
    done += w->runq_.push_many(fs + done, static_cast<std::uint32_t>(n - done));
    if (done < n) spill_half(*w);
  }
  wake_idle_worker();
}

void Scheduler::enqueue(Fiber* f, bool next) {
  Worker* w = current_worker();
  const bool migrate = migrating() && f->last_worker >= 0;
  if (w == nullptr || &w->sched_ != this || migrate) {
    global_push(f);  // in force-migration mode global_pop() hands it to another worker
    if (migrate) wake_all_idle_workers();  // the one woken might be the only one refusing it
    else wake_idle_worker();
    return;
  }
  if (next) {
    Fiber* displaced = w->runq_.push_next(f);
    // A hand-off alone wakes nobody: the waker usually parks next and this worker runs it at
    // once (ping-pong). Anything more queued deserves another worker's attention.
    if (displaced != nullptr) {
      push_local(*w, displaced);
      wake_idle_worker();
    }
    return;
  }
  push_local(*w, f);
  wake_idle_worker();
}

void Scheduler::ready_runnable(Worker& w, Fiber* f) {
  if (migrating()) {
    global_push(f);
    wake_all_idle_workers();
    return;
  }
  push_local(w, f);
}

void Scheduler::push_local(Worker& w, Fiber* f) {
  while (!w.runq_.push(f)) spill_half(w);
}

void Scheduler::spill_half(Worker& w) {
  Fiber* batch[RunQueue::kSize / 2 + 1];
  const std::uint32_t n = w.runq_.take_half_for_overflow(batch);
  if (n > 0) spill(batch, n);
}

void Scheduler::global_push(Fiber* f) {
  std::lock_guard lock(global_mu_);
  push_global_locked(&f, 1, global_);
}

void Scheduler::spill(Fiber** fs, std::uint32_t n) {
  // Fibers holding a stack to the front of fs, unstarted ones after them, each in ring order
  // (oldest first). The records are ours alone here: no thief can reach them.
  Fiber* unstarted[RunQueue::kSize / 2 + 1];
  std::uint32_t stacked = 0, pending = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    if (!fs[i]->started) unstarted[pending++] = fs[i];
    else fs[stacked++] = fs[i];
  }
  std::copy(unstarted, unstarted + pending, fs + stacked);
  std::lock_guard lock(global_mu_);
  auto push = [this](SpilledKind kind, Fiber** from, std::uint32_t count) {
    if (count == 0) return;
    Spilled& q = spilled_[kind];
    if (q.fibers.empty()) q.front_changes.fetch_add(1, std::memory_order_relaxed);
    push_global_locked(from, count, q.fibers);
  };
  push(kSpilledWithStack, fs, stacked);
  push(kSpilledUnstarted, fs + stacked, pending);
}

void Scheduler::push_global_locked(Fiber** fs, std::uint32_t n, std::deque<Fiber*>& queue) {
  if (migrating()) {
    for (std::uint32_t i = 0; i < n; ++i) {
      const int last = fs[i]->last_worker;
      if (last >= 0) global_by_last_worker_[static_cast<std::size_t>(last)].push_back(fs[i]);
      else global_.push_back(fs[i]);
    }
  } else {
    queue.insert(queue.end(), fs, fs + n);
  }
  global_size_.fetch_add(n, std::memory_order_seq_cst);
}

Fiber* Scheduler::global_pop(Worker& w) {
  std::lock_guard lock(global_mu_);
  if (migrating()) return global_pop_migrating(w);
  // A worker with nothing to do takes the spilled backlog first, with a share, as a steal would:
  // it is some worker's surplus. Injected fibers are also served one at a time at every
  // worker's fairness picks (global_pop_fair), so they cannot starve behind it.
  Spilled* spilled = nullptr;
  for (Spilled& q : spilled_) {
    if (!q.fibers.empty()) {
      spilled = &q;
      break;
    }
  }
  std::deque<Fiber*>& queue = spilled != nullptr ? spilled->fibers : global_;
  if (queue.empty()) return nullptr;
  Fiber* first = queue.front();
  queue.pop_front();
  // Take a fair share along, as Go's globrunqget does, so the next pops stay local. Pushed
  // newest first, so that the ring's LIFO pops take them oldest first: the global queue is FIFO
  // (fibers readied by the netpoller wait there in the order they became ready).
  std::size_t share = std::min<std::size_t>(queue.size() / workers_.size(), RunQueue::kSize / 2);
  const std::uint32_t used = w.runq_.size();  // counts run_next too: the room is a lower bound
  share = std::min<std::size_t>(share, used >= RunQueue::kSize ? 0 : RunQueue::kSize - used);
  for (std::size_t i = share; i-- > 0;) {
    // Only the owner pushes, thieves only take: the room cannot shrink under us.
    if (!w.runq_.push(queue[i])) die_broken_invariant(queue[i], "a run queue lost its room");
  }
  queue.erase(queue.begin(), queue.begin() + static_cast<std::ptrdiff_t>(share));
  if (spilled != nullptr) spilled->front_changes.fetch_add(1, std::memory_order_relaxed);
  global_size_.fetch_sub(1 + share, std::memory_order_seq_cst);
  return first;
}

Fiber* Scheduler::global_pop_fair(Worker& w, const std::array<bool, 2>& spilled_starved) {
  std::lock_guard lock(global_mu_);
  if (migrating()) return global_pop_migrating(w);
  std::deque<Fiber*>* queue = &global_;
  for (std::size_t k = 0; queue->empty() && k < spilled_.size(); ++k) {
    if (spilled_starved[k] && !spilled_[k].fibers.empty()) {
      queue = &spilled_[k].fibers;
      spilled_[k].front_changes.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (queue->empty()) return nullptr;
  Fiber* f = queue->front();
  queue->pop_front();
  global_size_.fetch_sub(1, std::memory_order_seq_cst);
  return f;
}

Fiber* Scheduler::global_pop_migrating(Worker& w) {
  // Only a fiber that last ran elsewhere (or never ran) may run here. The queues are taken
  // round-robin from the next worker on, so that no worker's fibers starve.
  std::deque<Fiber*>* from = global_.empty() ? nullptr : &global_;
  const std::size_t n = workers_.size();
  const auto self = static_cast<std::size_t>(w.index_);
  for (std::size_t k = 1; from == nullptr && k < n; ++k) {
    auto& q = global_by_last_worker_[(self + k) % n];
    if (!q.empty()) from = &q;
  }
  if (from == nullptr) return nullptr;
  Fiber* f = from->front();
  from->pop_front();
  global_size_.fetch_sub(1, std::memory_order_seq_cst);
  return f;
}

bool Scheduler::any_work_visible(const Worker& self) const noexcept {
  if (!global_empty()) {
    if (!migrating()) return true;
    // Force-migration mode: fibers that last ran here are not ours to take; counting them as
    // work kept this worker spinning (and so nobody woke the worker that may take them).
    std::lock_guard lock(global_mu_);
    if (!global_.empty()) return true;
    for (std::size_t k = 0; k < global_by_last_worker_.size(); ++k) {
      if (k != static_cast<std::size_t>(self.index_) && !global_by_last_worker_[k].empty()) return true;
    }
  }
  if (timers_.due(spindle::now())) return true;
  for (auto& w : workers_) {
    if (w.get() == &self) {
      if (!w->runq_.empty()) return true;
      continue;
    }
    // What a thief would take (Worker::steal): a short queue stays with a worker that keeps
    // switching, so it is no reason to stay awake; sleep_idle polls it in case that worker
    // stalls (kRunNextPoll).
    if (w->runq_.size() > kKeepQueued) return true;
  }
  return false;
}

void Scheduler::wake_idle_worker() {
  // Order the caller's queue push before reading the idle/spinning counts (see the header).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (nidle_.load(std::memory_order_seq_cst) == 0) return;
  int expected = 0;
  if (nspinning_.load(std::memory_order_seq_cst) != 0 ||
      !nspinning_.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) {
    return;  // a spinning worker will find the work
  }
  Worker* w = nullptr;
  {
    std::lock_guard lock(idle_mu_);
    if (!idle_.empty()) {
      w = idle_.back();
      idle_.pop_back();
      nidle_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  if (w == nullptr) {
    nspinning_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  w->wake_word_.store(1, std::memory_order_seq_cst);
  if (poll_owner_.load(std::memory_order_seq_cst) == w) {
    netpoller_.load(std::memory_order_acquire)->interrupt();
  } else {
    futex_wake(w->wake_word_);
  }
}

void Scheduler::wake_all_idle_workers() {
  // Every idle worker, each counted as spinning as wake_idle_worker counts the one it wakes: in
  // force-migration mode, and so that each blocks a newly relayed signal (os/relayed_signals).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  std::vector<Worker*> woken;
  {
    std::lock_guard lock(idle_mu_);
    woken.swap(idle_);
    nidle_.fetch_sub(static_cast<int>(woken.size()), std::memory_order_seq_cst);
    nspinning_.fetch_add(static_cast<int>(woken.size()), std::memory_order_seq_cst);
  }
  Netpoller* np = netpoller_.load(std::memory_order_acquire);
  for (Worker* w : woken) {
    w->wake_word_.store(1, std::memory_order_seq_cst);
    if (np != nullptr && poll_owner_.load(std::memory_order_seq_cst) == w) np->interrupt();
    else futex_wake(w->wake_word_);
  }
}

Netpoller& Scheduler::netpoller() {
  if (Netpoller* np = netpoller_.load(std::memory_order_acquire)) return *np;
  std::lock_guard lock(netpoller_mu_);
  if (!netpoller_owned_) {
    netpoller_owned_ = std::make_unique<Netpoller>();
    netpoller_.store(netpoller_owned_.get(), std::memory_order_release);
  }
  return *netpoller_owned_;
}

bool Scheduler::poll_network() {
  Netpoller* np = netpoller_.load(std::memory_order_acquire);
  if (np == nullptr || np->pending() == 0 || poll_owner_.load(std::memory_order_relaxed) != nullptr) {
    return false;
  }
  return np->poll(Clock::now()) > 0;  // a past deadline: poll without blocking
}

bool Scheduler::block_in_poller(Worker& w, TimePoint deadline) {
  Netpoller* np = netpoller_.load(std::memory_order_acquire);
  if (np == nullptr || np->pending() == 0) return false;
  Worker* expected = nullptr;
  if (!poll_owner_.compare_exchange_strong(expected, &w, std::memory_order_seq_cst)) return false;
  // Published as the poll owner before checking for a wake: a waker that set wake_word_ before
  // this sees us as owner and interrupts the poll instead (see wake_idle_worker).
  if (w.wake_word_.load(std::memory_order_seq_cst) == 0 && !stopping_.load(std::memory_order_seq_cst)) {
    np->poll(deadline);
  }
  poll_owner_.store(nullptr, std::memory_order_seq_cst);
  return true;
}

void Scheduler::on_timer_earlier() { wake_idle_worker(); }

namespace {

[[gnu::noinline]] std::size_t check_timers_traced(Scheduler& s, TimePoint now, int self,
                                                  bool every_heap) {
  const std::int64_t begin = trace_clock();
  const std::size_t fired = s.timers_.run_expired(now, self, every_heap);
  if (Worker* w = current_worker(); w != nullptr && &w->sched_ == &s) trace_timers(w->index_, begin, fired);
  return fired;
}

}  // namespace

void Scheduler::add_timer(TimerNode* t) {
  Worker* w = current_worker();
  if (timers_.add(t, w != nullptr && &w->sched_ == this ? w->index_ : -1)) on_timer_earlier();
}

std::size_t Scheduler::check_timers(int self, bool every_heap) {
  const TimePoint next = every_heap ? timers_.next() : timers_.next(self);
  if (next == kNoDeadline) return 0;  // no timer: no clock read (every 8th pick)
  const TimePoint now = spindle::now();  // virtual in a synctest bubble
  if (now < next) return 0;
  const std::size_t fired = trace_on() ? check_timers_traced(*this, now, self, every_heap)
                                       : timers_.run_expired(now, self, every_heap);
  timers_fired_.fetch_add(fired, std::memory_order_relaxed);
  return fired;
}

// ---------------------------------------------------------------------------------------------
// Entry points

void run_main(const Options& opts, const SpawnOptions& main_opts, const Callable& fn) {
  auto sched = std::make_unique<Scheduler>(opts);
  Scheduler* expected = nullptr;
  if (!g_sched.compare_exchange_strong(expected, sched.get(), std::memory_order_acq_rel)) {
    throw RuntimeError("spindle::run: a runtime is already running in this process "
                       "(run() does not nest; spawn a fiber with spindle::go instead)");
  }
  install_overflow_handler();
  sched->spawn(main_opts, fn, /*is_main=*/true);
  sched->start_workers();
  sched->watchdog_ = std::make_unique<Watchdog>(*sched);
  sched->workers_[0]->loop();
  for (std::size_t i = 1; i < sched->workers_.size(); ++i) sched->workers_[i]->thread_.join();
  while (sched->outside_wakers_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  sched->watchdog_.reset();
  record_abandoned(*sched);
  g_sched.store(nullptr, std::memory_order_release);
  if (sched->deadlocked_.load(std::memory_order_acquire)) {
    throw DeadlockError("all fibers are asleep - deadlock! (the dump is on stderr)");
  }
  // Fibers still alive are abandoned (runtime.hpp); their stacks go with the pool.
}

std::uint64_t spawn(const SpawnOptions& opts, const Callable& fn) {
  Scheduler* s = current_scheduler();
  if (s == nullptr) {
    throw RuntimeError("spindle::go: no runtime is running (call it inside spindle::run)");
  }
  return s->spawn(opts, fn);
}

}  // namespace spindle::detail

namespace spindle {

int num_workers() noexcept {
  auto* s = detail::current_scheduler();
  return s == nullptr ? 0 : static_cast<int>(s->workers_.size());
}

std::int64_t num_fibers() noexcept {
  auto* s = detail::current_scheduler();
  return s == nullptr ? 0 : s->registry_.live();
}

}  // namespace spindle
