// Time channels: Go's time.After, time.Tick, Timer, Ticker and AfterFunc.
//
//   spindle::select(spindle::case_recv(results, handle),
//                   spindle::case_recv(spindle::after(1s), [] { fmt::print("slow\n"); }));
//   spindle::Ticker t(100ms);
//   for (;;) { auto when = t.C().recv(); ... }
//
// Each time channel is fed by one TimerNode in the runtime's timer heap; the node's fire runs
// under the heap lock and offers the current time to the channel without blocking. The timer
// state belongs to the channel: when the last handle to the channel goes (the Timer, its C(),
// every copy of a Receiver from after()/tick()), the timer is cancelled and freed, so an
// abandoned after(1h) costs nothing once unreferenced (as in Go 1.23).
//
// Go 1.23 semantics: after Timer::stop, Timer::reset, Ticker::stop or Ticker::reset returns, no
// value from before the call is received (the channel holds at most one value, and these calls
// cancel the timer and drop a pending value under the timer's own lock). A slow receiver of a
// Ticker misses ticks instead of accumulating them.
//
// Thread-safety: every member may be called concurrently. Timers need a running runtime: the
// constructors and after()/tick()/after_func() throw RuntimeError outside one. A time channel or
// timer must not outlive the run() that created it by being used in a later run().
//
// Memory ordering: what happened before a stop/reset call happens-before the fire that it
// schedules; the value received from C() is the time at which the timer fired.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include <spindle/chan.hpp>
#include <spindle/clock.hpp>
#include <spindle/errors.hpp>

namespace spindle {

namespace detail {
struct TimeChanState;
struct FuncTimerState;

// Creates a channel (capacity 1) fed by a timer that first fires after `first` and then every
// `period` (period <= 0: once). Returns the owned channel and its timer state.
ChanCore* make_time_chan(Duration first, Duration period, TimeChanState** state);
bool time_chan_stop(TimeChanState* s) noexcept;
bool time_chan_reset(TimeChanState* s, Duration first, Duration period) noexcept;

struct FuncBox {
  void* fn;
  void (*call)(void* fn);
  void (*destroy)(void* fn) noexcept;
};
FuncTimerState* make_func_timer(Duration d, FuncBox box);
bool func_timer_stop(FuncTimerState* s) noexcept;
bool func_timer_reset(FuncTimerState* s, Duration d) noexcept;
void func_timer_retain(FuncTimerState* s) noexcept;
void func_timer_release(FuncTimerState* s) noexcept;
}  // namespace detail

// Go's time.After: a channel that receives the current time once, after `d` (at once for
// d <= 0). The timer is dropped when the last copy of the returned Receiver is.
[[nodiscard]] Receiver<TimePoint> after(Duration d);

// Go's time.Tick: a channel that receives the current time every `d`, dropping ticks a slow
// receiver misses. Returns a nil Receiver for d <= 0 (as Go returns nil). Stops when the last
// copy of the Receiver is dropped.
[[nodiscard]] Receiver<TimePoint> tick(Duration d);

// Go's time.Timer: sends the current time on C() once, after its duration. Copies share one
// timer (like Go's *Timer).
class Timer {
 public:
  // A nil timer: C() is a nil channel (never ready), stop() and reset() return false / throw.
  Timer() noexcept = default;
  // Starts a timer that fires after `d` (at once for d <= 0).
  explicit Timer(Duration d);

  // The channel the time is sent on. Capture it (a Receiver copy) freely; the timer keeps
  // running while any copy or the Timer exists.
  [[nodiscard]] const Receiver<TimePoint>& C() const noexcept { return c_; }

  // Prevents the timer from firing. Returns true if it was pending (not fired, or fired but not
  // yet received: that value is dropped), false if it had fired and been received, or was
  // stopped. Does not block. After it returns, C() yields no value until a reset.
  bool stop() noexcept { return state_ != nullptr && detail::time_chan_stop(state_); }
  // Stops the timer, drops any unreceived value, and restarts it to fire after `d`. Returns
  // what stop() would have. Throws ChanError on a nil timer.
  bool reset(Duration d) {
    if (state_ == nullptr) throw ChanError("spindle: Timer.Reset called on uninitialized Timer");
    return detail::time_chan_reset(state_, d, Duration::zero());
  }

 private:
  Receiver<TimePoint> c_;
  detail::TimeChanState* state_ = nullptr;  // owned by c_'s channel
};

// Go's time.Ticker: sends the current time on C() every period. A receiver slower than the
// period misses ticks (C() holds at most one); it never sees a burst of stale ones. Copies share
// one ticker; it stops when stop() is called or the last copy of it and of C() is gone.
class Ticker {
 public:
  Ticker() noexcept = default;  // nil
  // Throws Panic("non-positive interval for NewTicker") for d <= 0.
  explicit Ticker(Duration d);

  [[nodiscard]] const Receiver<TimePoint>& C() const noexcept { return c_; }
  // No more ticks; an unreceived tick is dropped. Does not close C().
  void stop() noexcept {
    if (state_ != nullptr) (void)detail::time_chan_stop(state_);
  }
  // Stops and restarts with period `d`, first tick `d` from now. Throws
  // Panic("non-positive interval for Ticker.Reset") for d <= 0.
  void reset(Duration d);

 private:
  Receiver<TimePoint> c_;
  detail::TimeChanState* state_ = nullptr;
};

// The handle after_func returns (Go's *Timer from AfterFunc). Copies share the timer; dropping
// every handle does not stop it.
class FuncTimer {
 public:
  FuncTimer() noexcept = default;
  explicit FuncTimer(detail::FuncTimerState* adopt) noexcept : s_(adopt) {}
  FuncTimer(const FuncTimer& o) noexcept : s_(o.s_) {
    if (s_ != nullptr) detail::func_timer_retain(s_);
  }
  FuncTimer(FuncTimer&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  FuncTimer& operator=(FuncTimer o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~FuncTimer() {
    if (s_ != nullptr) detail::func_timer_release(s_);
  }

  // Prevents f from running. True if that happened; false if f has already been started (it
  // is not waited for) or the timer was stopped.
  bool stop() noexcept { return s_ != nullptr && detail::func_timer_stop(s_); }
  // Schedules f to run (again) after `d`; true if the timer was pending (then f runs once,
  // after d, instead). Throws ChanError on a nil handle.
  bool reset(Duration d) {
    if (s_ == nullptr) throw ChanError("spindle: Timer.Reset called on uninitialized Timer");
    return detail::func_timer_reset(s_, d);
  }

 private:
  detail::FuncTimerState* s_ = nullptr;
};

// Go's time.AfterFunc: after `d`, runs f() in its own fiber (spawned with spindle::go; an
// exception escaping f ends the process, as an unrecovered panic in a goroutine does). f is
// kept for reset() to run it again; it is destroyed with the last handle once it can no longer
// run.
template <class F>
[[nodiscard]] FuncTimer after_func(Duration d, F f) {
  using Fn = std::decay_t<F>;
  auto owned = std::make_unique<Fn>(std::move(f));
  detail::FuncBox box{owned.get(), [](void* p) { (*static_cast<Fn*>(p))(); },
                      [](void* p) noexcept { delete static_cast<Fn*>(p); }};
  detail::FuncTimerState* s = detail::make_func_timer(d, box);
  (void)owned.release();  // now owned by the timer state
  return FuncTimer(s);
}

}  // namespace spindle
