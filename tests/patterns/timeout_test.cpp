// run_with_timeout: the outcome when the op wins; deadline_exceeded at the deadline (on a
// ManualClock) with the op seeing its context cancelled; a late value goes to cleanup exactly
// once; join waits for the op; the caller's own cancellation is reported as such; exceptions
// reach the caller while it waits.
#include <atomic>
#include <stdexcept>
#include <string>

#include <spindle/patterns/timeout.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(Timeout, OpWins) {
  ManualClock clock;
  Result<std::string> r = run_with_timeout(
      background(), 1s, [](const Context&) { return std::string("fast"); }, NoCleanup{},
      TimeoutOptions{.clock = &clock});
  EXPECT_EQ(*r, "fast");
  EXPECT_FALSE(run_with_timeout(background(), 1s, [](const Context&) {}, NoCleanup{},
                                TimeoutOptions{.clock = &clock}));
  EXPECT_EQ(run_with_timeout(background(), 1s,
                             [](const Context&) { return make_error_code(std::errc::io_error); }),
            std::errc::io_error);
  EXPECT_EQ(clock.pending(), 0u);  // the deadline's timer is stopped
  EXPECT_TRUE(spindle::testing::wait_other_fibers_at_most(0));
}

FIBER_TEST(Timeout, DeadlineWinsAndTheLateValueIsCleanedUp) {
  ManualClock clock;
  Chan<int> release(0);
  std::atomic<int> cleaned{0}, saw_cancel{0};
  WaitGroup wg;
  Result<int> r = make_error_code(std::errc::io_error);
  wg.go([&] {
    r = run_with_timeout(
        background(), 5s,
        [&](const Context& ctx) -> Result<int> {
          (void)ctx.done().recv();  // a well-behaved op: returns when cancelled...
          if (timed_out(ctx)) ++saw_cancel;
          return 42;                // ...but with a value that needs cleaning up
        },
        [&](int&& late) { cleaned += late; }, TimeoutOptions{.clock = &clock, .join = true});
  });
  clock.block_until_pending(1);
  clock.advance(5s);
  wg.wait();
  EXPECT_EQ(r.error(), spindle::errc::deadline_exceeded);
  EXPECT_EQ(saw_cancel.load(), 1);
  EXPECT_EQ(cleaned.load(), 42);  // join: cleanup ran before run_with_timeout returned
}

FIBER_TEST(Timeout, WithoutJoinTheOpFinishesOnItsOwn) {
  ManualClock clock;
  Chan<int> cleaned(1);
  WaitGroup wg;
  Result<int> r = 0;
  wg.go([&] {
    r = run_with_timeout(
        background(), 1s,
        [](const Context& ctx) -> Result<int> {
          (void)ctx.done().recv();
          return 7;
        },
        [&](int&& late) { cleaned.send(late); }, TimeoutOptions{.clock = &clock});
  });
  clock.block_until_pending(1);
  clock.advance(1s);
  wg.wait();
  EXPECT_EQ(r.error(), spindle::errc::deadline_exceeded);
  EXPECT_EQ(*cleaned.recv(), 7);
  EXPECT_TRUE(spindle::testing::wait_other_fibers_at_most(0));
}

FIBER_TEST(Timeout, CallerCancellationIsNotATimeout) {
  auto [ctx, cancel] = with_cancel(background());
  ManualClock clock;
  WaitGroup wg;
  Result<int> r = 0;
  wg.go([&, ctx = ctx] {
    r = run_with_timeout(ctx, 1h, [](const Context& c) -> Result<int> {
      (void)c.done().recv();
      return c.err();
    }, NoCleanup{}, TimeoutOptions{.clock = &clock, .join = true});
  });
  clock.block_until_pending(1);
  cancel();
  wg.wait();
  EXPECT_EQ(r.error(), spindle::errc::canceled);
}

FIBER_TEST(Timeout, SystemClockDeadline) {
  Result<int> r = run_with_timeout(background(), 5ms, [](const Context& ctx) -> Result<int> {
    EXPECT_TRUE(ctx.deadline().has_value());  // visible to the op with the system clock
    (void)ctx.done().recv();
    return ctx.err();
  }, NoCleanup{}, TimeoutOptions{.join = true});
  EXPECT_EQ(r.error(), spindle::errc::deadline_exceeded);
}

FIBER_TEST(Timeout, ExceptionReachesTheWaitingCaller) {
  EXPECT_THROW((void)run_with_timeout(
                   background(), 1h,
                   [](const Context&) -> Result<int> { throw std::logic_error("op"); }),
               std::logic_error);
}

}  // namespace
}  // namespace spindle::patterns
