// Deterministic tests of time-based code, after Go's testing/synctest.
//
//   TEST(Retry, BacksOffExponentially) {
//     spindle::synctest::run([] {
//       const auto t0 = spindle::now();
//       spindle::this_fiber::sleep_for(std::chrono::hours(1));   // returns at once
//       EXPECT_EQ(spindle::now() - t0, std::chrono::hours(1));   // exactly
//     });
//   }
//
// run(f) runs f as the main fiber of a new runtime (the "bubble") whose clock is virtual:
//  * spindle::now() starts at the real time of the call and does not move while any fiber of
//    the bubble can run;
//  * when every fiber is blocked and timers are pending, the clock jumps to the earliest timer
//    and fires it (and every other timer due at that instant);
// so sleep_for(1h) returns at once, a Ticker of 1 s ticks 1,000 times in milliseconds, and
// timeouts (recv_for, with_timeout, select's timeout case) fire at exactly their deadline.
// Every deadline in spindle is on this clock (deadline_after, Timer, Ticker, after, contexts,
// timed waits); read it with spindle::now(), never Clock::now(), in code under test.
//
// The bubble has one worker, so fibers run in a deterministic order given the same inputs.
// Blocking on anything outside the bubble (a socket, a blocking call, a plain thread that will
// send on a channel) is not a "durable" block: time stands still until that event arrives, as in
// Go. When every fiber is blocked and no timer is pending, nothing can ever wake them: run()
// prints the usual deadlock report and throws DeadlockError. As with spindle::run, fibers still
// alive when f returns are abandoned.
//
// Thread-safety: run() must not be called while a runtime is running (it throws RuntimeError);
// threads outside the bubble see the virtual clock in spindle::now() while it runs.
#pragma once

#include <chrono>
#include <cstddef>
#include <source_location>
#include <type_traits>
#include <utility>

#include <spindle/clock.hpp>
#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>

namespace spindle::synctest {

struct Options {
  std::size_t default_stack_size = 64 * 1024;  // as spindle::Options
  std::size_t max_guarded_stacks = 8192;       // as spindle::Options
  // How long (real time) every fiber must stay blocked with no timer pending before run()
  // reports a deadlock. 0: at once; raise it only if plain threads send into the bubble.
  std::chrono::milliseconds deadlock_grace{0};
};

// Blocks the calling fiber until every other fiber of the bubble is durably blocked (parked on
// something only the bubble or its clock can end), without moving the clock: after
// `go(f); synctest::wait();` f has run as far as it can. Go's synctest.Wait. Throws
// RuntimeError outside a bubble or outside a fiber.
void wait(std::source_location where = std::source_location::current());

// True while a synctest::run is running (in any thread).
[[nodiscard]] bool in_bubble() noexcept;

}  // namespace spindle::synctest

namespace spindle::detail {
// Switches the process to the virtual clock; throws RuntimeError if a runtime or a bubble runs.
spindle::Options synctest_enter(const synctest::Options& opts);
void synctest_leave() noexcept;
}  // namespace spindle::detail

namespace spindle::synctest {

// Runs `fn` in a new bubble (see above) and returns its result, or rethrows its exception.
// Throws DeadlockError if every fiber blocks with no timer pending, RuntimeError if a runtime is
// already running.
template <class F>
auto run(const Options& opts, F&& fn) -> std::invoke_result_t<F&> {
  const spindle::Options runtime_opts = detail::synctest_enter(opts);
  struct Leave {
    ~Leave() { detail::synctest_leave(); }
  } leave;
  return spindle::run(runtime_opts, std::forward<F>(fn));
}

template <class F>
auto run(F&& fn) -> std::invoke_result_t<F&> {
  return synctest::run(Options{}, std::forward<F>(fn));
}

}  // namespace spindle::synctest
