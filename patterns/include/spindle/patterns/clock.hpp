// Clocks for the time-based patterns: an injectable `patterns::Clock` so that rate limiters,
// breakers, debouncers, retries and supervisors can be tested exactly, without sleeping.
//
//   ManualClock clock;                         // a test's clock: time moves only on advance()
//   Limiter lim(10, 1, &clock);                // 10/s, burst 1
//   EXPECT_TRUE(lim.allow());  EXPECT_FALSE(lim.allow());
//   clock.advance(100ms);
//   EXPECT_TRUE(lim.allow());
//
// A Clock offers three things, the same three Go code takes from package time:
//  * now()                 time.Now();
//  * timer(d)              time.NewTimer(d): a channel that receives the clock's time once, for
//                          a pattern that parks (a limiter's wait, a retry's backoff sleep, a
//                          supervisor's pulse timeout) and selects on it together with ctx.done();
//  * after_func(d, f)      time.AfterFunc(d, f): for a pattern driven by callbacks (debounce).
//
// SystemClock is spindle's monotonic clock (spindle::Clock, steady_clock) and the runtime's
// timers; system_clock() is the instance every pattern uses when given no clock (a null
// `const Clock*`). ManualClock is a virtual clock for tests: now() moves only when advance() is
// called, and advance() fires, in time order, every timer and after_func whose time has come.
// Its after_func callbacks run synchronously on the fiber (or thread) that calls advance(),
// outside the clock's lock, so a test that advances time observes their effects when advance()
// returns; timers are delivered by a non-blocking send on their channel (capacity 1), so the
// parked fiber runs soon after, not necessarily before advance() returns.
// block_until_pending(n) lets a test wait until the code under test has armed its timers
// before it advances time (jonboulle/clockwork's BlockUntil).
//
// Deadlines of contexts: a Context's deadline is always on spindle::Clock (the runtime's timer
// heap runs it). timeout_context(parent, d, clock) gives a context that is cancelled after d *on
// `clock`*: with the system clock that is with_timeout (err() deadline_exceeded); with any other
// clock it is a cancel driven by the clock's after_func (err() canceled, cause()
// deadline_exceeded, no deadline() visible). Patterns that report "timed out" test
// cause(ctx) == errc::deadline_exceeded, which holds for both.
//
// Thread-safety: every member of every clock may be called concurrently from fibers and threads.
// Lifetime: a ClockTimer or ClockFunc may outlive its ManualClock (it then never fires, and
// stop() returns false). A SystemClock's timers need a running runtime (they throw RuntimeError
// outside one, as spindle::Timer does).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <system_error>
#include <utility>

#include <spindle/chan.hpp>
#include <spindle/clock.hpp>
#include <spindle/context.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

using Duration = spindle::Duration;
using TimePoint = spindle::TimePoint;

// A one-shot timer armed on some Clock: C() receives the clock's time once, when it fires.
// Move-only; destroying it stops it (so a pattern that leaves its select early leaves no timer
// behind).
class ClockTimer {
 public:
  // What a clock implements behind the handle.
  struct Impl {
    virtual ~Impl() = default;
    // Prevents the timer from firing; true if it was pending (Go's Timer.Stop).
    virtual bool stop() noexcept = 0;
  };

  ClockTimer() noexcept = default;  // a nil timer: C() is never ready
  ClockTimer(Receiver<TimePoint> c, std::unique_ptr<Impl> impl) noexcept
      : c_(std::move(c)), impl_(std::move(impl)) {}
  ClockTimer(ClockTimer&&) noexcept = default;
  ClockTimer& operator=(ClockTimer&& o) noexcept {
    if (this != &o) {
      (void)stop();
      c_ = std::move(o.c_);
      impl_ = std::move(o.impl_);
    }
    return *this;
  }
  ~ClockTimer() { (void)stop(); }

  [[nodiscard]] const Receiver<TimePoint>& C() const noexcept { return c_; }
  // True if the timer was pending and will now never fire. Never blocks.
  bool stop() noexcept { return impl_ != nullptr && impl_->stop(); }

 private:
  Receiver<TimePoint> c_;
  std::unique_ptr<ClockTimer::Impl> impl_;
};

// The handle after_func returns. Unlike ClockTimer, dropping it does not stop the callback
// (Go's AfterFunc): call stop() for that. Move-only.
class ClockFunc {
 public:
  ClockFunc() noexcept = default;
  explicit ClockFunc(std::unique_ptr<ClockTimer::Impl> impl) noexcept : impl_(std::move(impl)) {}
  // True if this call prevented the callback from running; false if it has started (it is not
  // waited for), has run, or was stopped. Never blocks.
  bool stop() noexcept { return impl_ != nullptr && impl_->stop(); }
  [[nodiscard]] bool is_nil() const noexcept { return impl_ == nullptr; }

 private:
  std::unique_ptr<ClockTimer::Impl> impl_;
};

// The clock interface (see the file comment). Implementations must be thread-safe.
class Clock {
 public:
  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock() = default;

  // The current time. Never blocks.
  [[nodiscard]] virtual TimePoint now() const noexcept = 0;
  // A timer that fires once, d from now (at the next opportunity for d <= 0).
  [[nodiscard]] virtual ClockTimer timer(Duration d) const = 0;
  // Runs f once, d from now: SystemClock in a fiber of its own (spindle::after_func),
  // ManualClock on the fiber calling advance(). An exception escaping f ends the process with
  // SystemClock (an unrecovered panic in a goroutine) and propagates out of advance() with
  // ManualClock.
  virtual ClockFunc after_func(Duration d, std::function<void()> f) const = 0;
  // True when now() is spindle::now() (the runtime's clock, virtual inside synctest::run), so
  // durations on this clock and Context deadlines can be mixed freely.
  [[nodiscard]] virtual bool is_steady() const noexcept { return false; }
};

// spindle's monotonic clock and the runtime's timers: spindle::now(), so inside a synctest bubble
// it reads the bubble's virtual time, the time its timers and context deadlines run on.
class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const noexcept override { return spindle::now(); }
  [[nodiscard]] ClockTimer timer(Duration d) const override;
  ClockFunc after_func(Duration d, std::function<void()> f) const override;
  [[nodiscard]] bool is_steady() const noexcept override { return true; }
};

// The process-wide SystemClock every pattern uses when given no clock.
[[nodiscard]] const Clock& system_clock() noexcept;
[[nodiscard]] inline const Clock& clock_or_system(const Clock* c) noexcept {
  return c != nullptr ? *c : system_clock();
}

// A virtual clock for tests (see the file comment). Starts at `start` (by default one day past
// the steady clock's epoch, so that subtracting a few hours never goes below it).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimePoint start = TimePoint{} + std::chrono::hours(24));
  ~ManualClock() override;

  [[nodiscard]] TimePoint now() const noexcept override;
  // d <= 0: fires at the next advance() (advance(0) included), never synchronously.
  [[nodiscard]] ClockTimer timer(Duration d) const override;
  // d <= 0: runs at the next advance(), never synchronously (so a caller may arm it while
  // holding a lock that f takes).
  ClockFunc after_func(Duration d, std::function<void()> f) const override;

  // Moves time forward by d (d < 0 throws ConfigError), firing every timer and callback due by
  // the new time in order of their due time (ties: order of arming). While it fires one, now()
  // reads that one's due time, so a callback that arms another timer due before the target
  // sees it fire within the same advance(). Callbacks run here, outside the clock's lock.
  void advance(Duration d);
  // advance(t - now()); t before now() throws ConfigError.
  void set(TimePoint t);

  // Timers and callbacks armed and not yet fired or stopped.
  [[nodiscard]] std::size_t pending() const;
  // Parks the caller until pending() >= n (the code under test has armed its timers).
  void block_until_pending(std::size_t n) const;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

// Sleeps for d on `clock` unless ctx is done first. Returns an empty code after the full sleep,
// else ctx.err() (at once if ctx is already done, even for d <= 0). Parks the calling fiber.
[[nodiscard]] std::error_code sleep_for(const Clock& clock, const Context& ctx, Duration d);

// A context cancelled after d on `clock` (see the file comment), with the handles that keep it:
// destroying a ClockContext cancels its context and stops its timer. Move-only.
struct ClockContext {
  Context ctx;
  CancelFunc cancel;  // cancels ctx (err canceled)
  ClockFunc timer;    // non-steady clocks: the callback that cancels ctx at the deadline

  ClockContext() = default;
  ClockContext(ClockContext&&) noexcept = default;
  ClockContext& operator=(ClockContext&& o) noexcept {
    if (this != &o) {
      (void)timer.stop();
      ctx = std::move(o.ctx);
      cancel = std::move(o.cancel);
      timer = std::move(o.timer);
    }
    return *this;
  }
  ~ClockContext() { (void)timer.stop(); }
};
[[nodiscard]] ClockContext timeout_context(const Context& parent, Duration d, const Clock& clock);

// True if ctx is done because a deadline passed: its own or an ancestor's with_timeout, or a
// timeout_context on any clock.
[[nodiscard]] inline bool timed_out(const Context& ctx) noexcept {
  return ctx.err() == spindle::errc::deadline_exceeded ||
         (ctx.err() && cause(ctx) == spindle::errc::deadline_exceeded);
}

}  // namespace spindle::patterns
