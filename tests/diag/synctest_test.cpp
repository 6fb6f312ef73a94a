// synctest: a bubble's virtual clock moves only when every fiber is blocked, straight to the
// next timer; so time-based code runs instantly and exactly (Go's testing/synctest).
//
// These are plain TESTs, not FIBER_TESTs: synctest::run starts a runtime of its own (one worker),
// which cannot nest inside the fixture's. Where a test checks real elapsed time, it only checks
// that it is far below the virtual time covered (a loaded machine cannot break that).
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/synctest.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/time.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

TEST(Synctest, SleepForAnHourReturnsAtOnceWithTheClockMovedExactly) {
  const auto wall0 = Clock::now();
  synctest::run([] {
    EXPECT_TRUE(synctest::in_bubble());
    const TimePoint t0 = now();
    this_fiber::sleep_for(1h);
    EXPECT_EQ(now() - t0, 1h);
    this_fiber::sleep_until(t0 + 90min);
    EXPECT_EQ(now() - t0, 90min);
  });
  EXPECT_LT(Clock::now() - wall0, 10min);
  EXPECT_FALSE(synctest::in_bubble());
}

TEST(Synctest, TimeStandsStillWhileFibersRun) {
  synctest::run([] {
    const TimePoint t0 = now();
    for (int i = 0; i < 1000; ++i) this_fiber::yield();
    volatile std::uint64_t sink = 0;
    for (std::uint64_t i = 0; i < 10'000'000; ++i) sink = sink + i;
    EXPECT_EQ(now(), t0);
  });
}

TEST(Synctest, TickerFiresAThousandTimesExactly) {
  const auto wall0 = Clock::now();
  synctest::run([] {
    const TimePoint t0 = now();
    Ticker ticker(1s);
    int ticks = 0;
    for (int i = 1; i <= 1000; ++i) {
      const std::optional<TimePoint> at = ticker.C().recv();
      ASSERT_TRUE(at.has_value());
      EXPECT_EQ(*at - t0, i * 1s);  // each tick carries its exact virtual time
      ++ticks;
    }
    ticker.stop();
    EXPECT_EQ(ticks, 1000);
    EXPECT_EQ(now() - t0, 1000s);
  });
  // 1000 s of virtual time; the bound only proves the clock was virtual.
  EXPECT_LT(Clock::now() - wall0, 100s);
}

TEST(Synctest, SleepersWakeInDeadlineOrderAtTheirExactTimes) {
  synctest::run([] {
    const TimePoint t0 = now();
    Chan<int> woke(10);
    std::vector<Duration> at(4);
    WaitGroup wg;
    for (int s : {3, 1, 2}) {
      wg.go([&, s] {
        this_fiber::sleep_for(s * 1s);
        at[static_cast<std::size_t>(s)] = now() - t0;
        woke.send(s);
      });
    }
    wg.wait();
    EXPECT_EQ(*woke.recv(), 1);
    EXPECT_EQ(*woke.recv(), 2);
    EXPECT_EQ(*woke.recv(), 3);
    EXPECT_EQ(at[1], 1s);
    EXPECT_EQ(at[2], 2s);
    EXPECT_EQ(at[3], 3s);
    EXPECT_EQ(now() - t0, 3s);
  });
}

TEST(Synctest, ContextTimeoutFiresAtExactlyItsDeadline) {
  synctest::run([] {
    const TimePoint t0 = now();
    auto [ctx, cancel] = with_timeout(background(), 5s);
    EXPECT_FALSE(ctx.err());
    (void)ctx.done().recv();
    EXPECT_EQ(now() - t0, 5s);
    EXPECT_EQ(ctx.err(), errc::deadline_exceeded);
    cancel();
  });
}

TEST(Synctest, ContextAwareSleepEndsAtTheContextDeadline) {
  synctest::run([] {
    const TimePoint t0 = now();
    auto [ctx, cancel] = with_timeout(background(), 2s);
    EXPECT_EQ(this_fiber::sleep_for(ctx, 1h), errc::deadline_exceeded);
    EXPECT_EQ(now() - t0, 2s);
    cancel();
  });
}

TEST(Synctest, SelectTakesItsTimeoutCaseAtExactlyTheTimeout) {
  synctest::run([] {
    const TimePoint t0 = now();
    Chan<int> never(0);
    Chan<int> late(1);
    go([late] {
      this_fiber::sleep_for(10s);
      late.send(7);
    });
    const int first = select(case_recv(never), case_recv(late), case_timeout(3s));
    EXPECT_EQ(first, 2);
    EXPECT_EQ(now() - t0, 3s);
    const int second = select(case_recv(never), case_recv(late), case_timeout(30s));
    EXPECT_EQ(second, 1);
    EXPECT_EQ(now() - t0, 10s);
  });
}

TEST(Synctest, TimedReceiveTimesOutExactly) {
  synctest::run([] {
    const TimePoint t0 = now();
    Chan<int> c(0);
    RecvResult<int> r = c.recv_for(250ms);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status, ChanStatus::timeout);
    EXPECT_EQ(now() - t0, 250ms);
  });
}

TEST(Synctest, AfterAndTimersFireAtTheirDeadlines) {
  synctest::run([] {
    const TimePoint t0 = now();
    Timer t(2s);
    Receiver<TimePoint> a = after(1500ms);
    EXPECT_EQ(*a.recv() - t0, 1500ms);
    EXPECT_EQ(*t.C().recv() - t0, 2s);
    Timer stopped(1s);
    EXPECT_TRUE(stopped.stop());
    EXPECT_EQ(stopped.C().recv_for(5s).status, ChanStatus::timeout);
    EXPECT_EQ(now() - t0, 7s);
  });
}

TEST(Synctest, WaitReturnsOnceEveryOtherFiberIsBlocked) {
  synctest::run([] {
    const TimePoint t0 = now();
    int stage = 0;
    Chan<int> go_on(0);
    go([&] {
      stage = 1;
      (void)go_on.recv();
      stage = 2;
      this_fiber::sleep_for(1s);
      stage = 3;
    });
    synctest::wait();
    EXPECT_EQ(stage, 1);  // it ran until it blocked on go_on
    go_on.send(0);
    synctest::wait();
    EXPECT_EQ(stage, 2);  // now asleep; wait() does not move the clock
    EXPECT_EQ(now(), t0);
    this_fiber::sleep_for(1s);  // both timers are due at t0+1s
    synctest::wait();
    EXPECT_EQ(stage, 3);
    EXPECT_EQ(now() - t0, 1s);
  });
}

TEST(Synctest, DeadlockInsideTheBubbleThrows) {
  // A nil channel: the deadlocked fiber is abandoned, and it owns nothing on the heap that
  // LeakSanitizer would report.
  EXPECT_THROW(synctest::run([] {
                 Chan<int> nil_chan;
                 (void)nil_chan.recv();
               }),
               DeadlockError);
  EXPECT_FALSE(synctest::in_bubble());
  // A pending timer is not a deadlock: the clock advances to it.
  synctest::run([] {
    Chan<int> c(0);
    go([c] {
      this_fiber::sleep_for(24h);
      c.send(1);
    });
    EXPECT_EQ(*c.recv(), 1);
  });
}

TEST(Synctest, ReturnsTheResultAndRethrows) {
  EXPECT_EQ(synctest::run([] { return 42; }), 42);
  EXPECT_THROW(synctest::run([] { throw std::runtime_error("boom"); }), std::runtime_error);
  EXPECT_FALSE(synctest::in_bubble());
}

// synctest::run refuses to nest in a running runtime, and wait() refuses to run outside one.
FIBER_TEST(Synctest, CannotRunInsideARuntime) {
  EXPECT_THROW(synctest::run([] {}), RuntimeError);
  EXPECT_THROW(synctest::wait(), RuntimeError);
  EXPECT_FALSE(synctest::in_bubble());
}

TEST(Synctest, TheClockIsRealAgainAfterTheBubble) {
  synctest::run([] { this_fiber::sleep_for(100h); });
  // spindle::now() is Clock::now() again: within a real instant of it, not 100 h ahead.
  const auto diff = now() - Clock::now();
  EXPECT_LT(diff, 1s);
  EXPECT_GT(diff, -1s);
}

}  // namespace
}  // namespace spindle
