// patterns::Clock: ManualClock fires timers and callbacks in time order on advance(), stop()
// prevents firing, block_until_pending sees armed timers, sleep_for honours ctx, and
// timeout_context cancels on the clock's time (manual) or the runtime's (system).
#include <atomic>
#include <vector>

#include <spindle/patterns/clock.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(PatternsClock, ManualNowMovesOnlyOnAdvance) {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  EXPECT_EQ(clock.now(), t0);
  clock.advance(5s);
  EXPECT_EQ(clock.now(), t0 + 5s);
  clock.set(t0 + 7s);
  EXPECT_EQ(clock.now(), t0 + 7s);
  EXPECT_THROW(clock.set(t0), ConfigError);
  EXPECT_THROW(clock.advance(-1s), ConfigError);
}

FIBER_TEST(PatternsClock, TimersFireInOrderWithTheirDueTime) {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  ClockTimer a = clock.timer(3s);
  ClockTimer b = clock.timer(1s);
  ClockTimer c = clock.timer(2s);
  EXPECT_EQ(clock.pending(), 3u);
  clock.advance(2s);
  EXPECT_EQ(clock.pending(), 1u);
  auto rb = b.C().try_recv();
  auto rc = c.C().try_recv();
  ASSERT_TRUE(rb.ok());
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rb, t0 + 1s);
  EXPECT_EQ(*rc, t0 + 2s);
  EXPECT_FALSE(a.C().try_recv().ok());
  EXPECT_TRUE(a.stop());
  EXPECT_FALSE(a.stop());
  EXPECT_EQ(clock.pending(), 0u);
  clock.advance(10s);
  EXPECT_FALSE(a.C().try_recv().ok());
  EXPECT_FALSE(b.stop());  // already fired
}

FIBER_TEST(PatternsClock, DestroyingATimerStopsIt) {
  ManualClock clock;
  { ClockTimer t = clock.timer(1s); EXPECT_EQ(clock.pending(), 1u); }
  EXPECT_EQ(clock.pending(), 0u);
}

FIBER_TEST(PatternsClock, AfterFuncRunsOnAdvanceInOrderAndCanRearm) {
  ManualClock clock;
  const TimePoint t0 = clock.now();
  std::vector<int> order;
  std::vector<TimePoint> at;
  ClockFunc f2 = clock.after_func(2s, [&] { order.push_back(2); at.push_back(clock.now()); });
  ClockFunc f1 = clock.after_func(1s, [&] {
    order.push_back(1);
    at.push_back(clock.now());
    // Armed while firing at t0+1s: due at t0+1.5s, inside this advance.
    (void)clock.after_func(500ms, [&] { order.push_back(15); at.push_back(clock.now()); });
  });
  ClockFunc f3 = clock.after_func(3s, [&] { order.push_back(3); });
  EXPECT_TRUE(f3.stop());
  clock.advance(2s);
  EXPECT_EQ(order, (std::vector<int>{1, 15, 2}));
  EXPECT_EQ(at, (std::vector<TimePoint>{t0 + 1s, t0 + 1500ms, t0 + 2s}));
  EXPECT_FALSE(f1.stop());
  EXPECT_EQ(clock.now(), t0 + 2s);
}

FIBER_TEST(PatternsClock, ZeroDelayFiresAtNextAdvance) {
  ManualClock clock;
  int ran = 0;
  (void)clock.after_func(0s, [&] { ++ran; });
  ClockTimer t = clock.timer(-1s);
  EXPECT_EQ(ran, 0);
  EXPECT_FALSE(t.C().try_recv().ok());
  clock.advance(0s);
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(t.C().try_recv().ok());
}

FIBER_TEST(PatternsClock, BlockUntilPendingThenAdvanceWakesSleeper) {
  ManualClock clock;
  WaitGroup wg;
  std::atomic<int> woke{0};
  std::error_code got = make_error_code(spindle::errc::canceled);
  wg.go([&] {
    got = sleep_for(clock, background(), 10s);
    woke = 1;
  });
  clock.block_until_pending(1);
  clock.advance(9s);
  EXPECT_EQ(clock.pending(), 1u);
  clock.advance(1s);
  wg.wait();
  EXPECT_EQ(woke.load(), 1);
  EXPECT_FALSE(got);
}

FIBER_TEST(PatternsClock, SleepForHonoursContext) {
  ManualClock clock;
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg;
  std::error_code got;
  wg.go([&, ctx = ctx] { got = sleep_for(clock, ctx, 1h); });
  clock.block_until_pending(1);
  cancel();
  wg.wait();
  EXPECT_EQ(got, spindle::errc::canceled);
  EXPECT_EQ(clock.pending(), 0u);  // the abandoned sleep's timer is stopped
  // Already done: fails at once even for a zero sleep.
  EXPECT_EQ(sleep_for(clock, ctx, 0s), spindle::errc::canceled);
  EXPECT_EQ(sleep_for(system_clock(), ctx, 0s), spindle::errc::canceled);
  EXPECT_FALSE(sleep_for(system_clock(), background(), 0s));
}

FIBER_TEST(PatternsClock, TimeoutContextOnManualClock) {
  ManualClock clock;
  ClockContext tc = timeout_context(background(), 5s, clock);
  EXPECT_FALSE(tc.ctx.err());
  clock.advance(4s);
  EXPECT_FALSE(tc.ctx.err());
  clock.advance(1s);
  EXPECT_EQ(tc.ctx.err(), spindle::errc::canceled);
  EXPECT_EQ(cause(tc.ctx), spindle::errc::deadline_exceeded);
  EXPECT_TRUE(timed_out(tc.ctx));
  // Cancelled by hand: not a timeout, and the timer is gone.
  ClockContext tc2 = timeout_context(background(), 5s, clock);
  tc2.cancel();
  EXPECT_EQ(cause(tc2.ctx), spindle::errc::canceled);
  EXPECT_FALSE(timed_out(tc2.ctx));
  { ClockContext tc3 = timeout_context(background(), 5s, clock); }
  EXPECT_EQ(clock.pending(), 1u);  // tc2's timer until tc2 goes; tc3's stopped
}

FIBER_TEST(PatternsClock, TimeoutContextOnSystemClock) {
  ClockContext tc = timeout_context(background(), 1ms, system_clock());
  ASSERT_TRUE(tc.ctx.deadline().has_value());
  (void)tc.ctx.done().recv();
  EXPECT_EQ(tc.ctx.err(), spindle::errc::deadline_exceeded);
  EXPECT_TRUE(timed_out(tc.ctx));
}

FIBER_TEST(PatternsClock, SystemTimerFires) {
  ClockTimer t = system_clock().timer(1ms);
  auto v = t.C().recv();
  ASSERT_TRUE(v.has_value());
  EXPECT_GE(*v, system_clock().now() - 1h);
}

}  // namespace
}  // namespace spindle::patterns
