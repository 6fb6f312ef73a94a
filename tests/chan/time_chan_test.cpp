// Time channels: after, tick, Timer (Go 1.23 stop/reset: no stale value), Ticker (a slow
// receiver drops ticks), after_func. Assertions are lower bounds and orderings only, so a
// loaded machine cannot fail them.
#include <gtest/gtest.h>

#include <atomic>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/time.hpp>

#include "support/fiber_test.hpp"
#include "support/polling.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

FIBER_TEST(TimeChan, AfterFires) {
  const auto t0 = Clock::now();
  Receiver<TimePoint> c = after(5ms);
  auto when = c.recv();
  ASSERT_TRUE(when);
  EXPECT_GE(*when, t0 + 5ms);
  EXPECT_LE(*when, Clock::now());
  // Fires once: nothing more arrives.
  EXPECT_EQ(c.try_recv().status, ChanStatus::would_block);
  // Non-positive durations fire at once.
  EXPECT_TRUE(after(0ms).recv());
  EXPECT_TRUE(after(-5ms).recv());
}

FIBER_TEST(TimeChan, AfterInSelect) {
  Chan<int> never(0);
  const auto t0 = Clock::now();
  EXPECT_EQ(select(case_recv(never), case_recv(after(3ms))), 1);
  EXPECT_GE(Clock::now(), t0 + 3ms);
  // An unreferenced long timer is dropped with its channel (ASan would report a leak).
  for (int i = 0; i < 100; ++i) {
    Chan<int> ready(1);
    ready.send(i);
    EXPECT_EQ(select(case_recv(ready), case_recv(after(1h))), 0);
  }
}

FIBER_TEST(TimeChan, TimerStopBeforeFire) {
  Timer t(1h);
  EXPECT_TRUE(t.stop());
  EXPECT_FALSE(t.stop());
  EXPECT_EQ(t.C().try_recv().status, ChanStatus::would_block);
}

// Go 1.23: a fired but unreceived value is dropped by stop (which reports true); nothing
// stale is received afterwards.
FIBER_TEST(TimeChan, TimerStopDropsUnreceivedValue) {
  Timer t(1ms);
  ASSERT_TRUE(testing::eventually([&] { return t.C().len() == 1; }));
  EXPECT_TRUE(t.stop());
  EXPECT_EQ(t.C().try_recv().status, ChanStatus::would_block);
  EXPECT_EQ(t.C().recv_for(5ms).status, ChanStatus::timeout);
  EXPECT_FALSE(t.stop());
}

FIBER_TEST(TimeChan, TimerStopAfterReceive) {
  Timer t(1ms);
  EXPECT_TRUE(t.C().recv());
  EXPECT_FALSE(t.stop());
}

FIBER_TEST(TimeChan, TimerReset) {
  Timer t(1ms);
  ASSERT_TRUE(testing::eventually([&] { return t.C().len() == 1; }));
  // Reset drops the unreceived value: the next value comes from the new deadline.
  const auto t0 = Clock::now();
  EXPECT_TRUE(t.reset(5ms));
  auto when = t.C().recv();
  ASSERT_TRUE(when);
  EXPECT_GE(*when, t0 + 5ms);
  // Reset of a pending timer: true, and it fires once, at the new time.
  EXPECT_FALSE(t.reset(1h));
  const auto t1 = Clock::now();
  EXPECT_TRUE(t.reset(2ms));
  when = t.C().recv();
  ASSERT_TRUE(when);
  EXPECT_GE(*when, t1 + 2ms);
  EXPECT_EQ(t.C().recv_for(5ms).status, ChanStatus::timeout);
  // A copy of C() outlives the Timer object and still works.
  Receiver<TimePoint> c;
  {
    Timer u(1ms);
    c = u.C();
  }
  EXPECT_TRUE(c.recv());
  // A nil timer.
  Timer nil;
  EXPECT_FALSE(nil.stop());
  EXPECT_THROW((void)nil.reset(1ms), ChanError);
}

FIBER_TEST(TimeChan, TickerTicks) {
  Ticker t(1ms);
  TimePoint prev{};
  for (int i = 0; i < 5; ++i) {
    auto when = t.C().recv();
    ASSERT_TRUE(when);
    EXPECT_GT(*when, prev);
    prev = *when;
  }
  t.stop();
  EXPECT_EQ(t.C().try_recv().status, ChanStatus::would_block);
  EXPECT_EQ(t.C().recv_for(10ms).status, ChanStatus::timeout);
  // Reset restarts it with a new period.
  t.reset(2ms);
  EXPECT_TRUE(t.C().recv());
  t.stop();
}

// A receiver slower than the period sees at most one pending tick, never a burst.
FIBER_TEST(TimeChan, TickerDropsTicksForSlowReceiver) {
  Ticker t(1ms);
  this_fiber::sleep_for(20ms);  // being slow, not synchronising
  EXPECT_LE(t.C().len(), 1u);
  EXPECT_EQ(t.C().cap(), 1u);
  auto first = t.C().recv();
  ASSERT_TRUE(first);
  const auto received_at = Clock::now();
  auto second = t.C().recv();
  ASSERT_TRUE(second);
  // The second tick was produced after the first was received (it was not queued behind it),
  // up to the tick that may have been produced between recv's return and our clock read.
  EXPECT_GT(*second, *first);
  EXPECT_GE(*second + 2ms, received_at);
  t.stop();
}

FIBER_TEST(TimeChan, TickerRejectsNonPositivePeriod) {
  try {
    Ticker t(0ms);
    ADD_FAILURE() << "no throw";
  } catch (const Panic& e) {
    EXPECT_STREQ(e.what(), "non-positive interval for NewTicker");
  }
  EXPECT_THROW(Ticker(-1ms), Panic);
  Ticker t(1h);
  try {
    t.reset(0ms);
    ADD_FAILURE() << "no throw";
  } catch (const Panic& e) {
    EXPECT_STREQ(e.what(), "non-positive interval for Ticker.Reset");
  }
  t.stop();
}

FIBER_TEST(TimeChan, Tick) {
  EXPECT_TRUE(tick(0ms).is_nil());
  EXPECT_TRUE(tick(-1ms).is_nil());
  auto c = tick(1ms);
  EXPECT_TRUE(c.recv());
  EXPECT_TRUE(c.recv());
}

FIBER_TEST(TimeChan, AfterFuncRuns) {
  Chan<int> ran(4);
  const auto t0 = Clock::now();
  FuncTimer t = after_func(2ms, [ran] { ran.send(1); });
  EXPECT_EQ(*ran.recv(), 1);
  EXPECT_GE(Clock::now(), t0 + 2ms);
  EXPECT_FALSE(t.stop());  // already started
  // reset runs it again.
  EXPECT_FALSE(t.reset(1ms));
  EXPECT_EQ(*ran.recv(), 1);
  // Dropping every handle does not stop it.
  { (void)after_func(1ms, [ran] { ran.send(2); }); }
  EXPECT_EQ(*ran.recv(), 2);
}

FIBER_TEST(TimeChan, AfterFuncStop) {
  std::atomic<int> runs{0};
  FuncTimer t = after_func(1h, [&runs] { runs.fetch_add(1); });
  EXPECT_TRUE(t.stop());
  EXPECT_FALSE(t.stop());
  // Reset after stop: pending again, and stop prevents it again.
  EXPECT_FALSE(t.reset(1h));
  EXPECT_TRUE(t.reset(1h));
  EXPECT_TRUE(t.stop());
  EXPECT_EQ(runs.load(), 0);
  // A move-only callable.
  Chan<int> ran(1);
  auto p = std::make_unique<int>(7);
  FuncTimer u = after_func(1ms, [ran, p = std::move(p)] { ran.send(*p); });
  EXPECT_EQ(*ran.recv(), 7);
}

// Stop/reset racing with firing, many times: every received value postdates the last reset
// that preceded the receive, and the runtime stays consistent (ASan/TSan).
FIBER_TEST(TimeChan, StopResetRaceWithFire) {
  for (int i = 0; i < 300; ++i) {
    Timer t(std::chrono::microseconds(i % 50));
    if (i % 3 == 0) this_fiber::yield();
    (void)t.stop();
    EXPECT_EQ(t.C().try_recv().status, ChanStatus::would_block) << i;
    const auto r0 = Clock::now();
    (void)t.reset(std::chrono::microseconds(i % 20));
    auto when = t.C().recv();
    ASSERT_TRUE(when);
    EXPECT_GE(*when, r0);
  }
}

}  // namespace
}  // namespace spindle
