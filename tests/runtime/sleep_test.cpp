// Sleeping and yielding.
#include <algorithm>
#include <atomic>
#include <random>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/time.hpp>
#include <spindle/waitgroup.hpp>

#include "runtime/park_latch.hpp"
#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

FIBER_TEST(Sleep, NeverWakesBeforeItsDeadline) {
  for (auto d : {0ms, 1ms, 3ms, 10ms}) {
    const auto start = Clock::now();
    this_fiber::sleep_for(d);
    EXPECT_GE(Clock::now() - start, d);
  }
  const auto start = Clock::now();
  this_fiber::sleep_for(-5ms);  // Go: d <= 0 returns at once
  this_fiber::sleep_until(start - 1s);
}

FIBER_TEST(Sleep, ManySleepersAllWakeAfterTheirDeadlines) {
  constexpr int kSleepers = static_cast<int>(testing::scaled(100'000, 10'000, 2'000));
  std::atomic<int> early{0};
  std::atomic<int> woke{0};
  testing::ParkLatch done(kSleepers);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> ms(1, 10);
  for (int i = 0; i < kSleepers; ++i) {
    const auto d = std::chrono::milliseconds(ms(rng));
    go([&, d] {
      const auto deadline = Clock::now() + d;
      this_fiber::sleep_until(deadline);
      if (Clock::now() < deadline) early.fetch_add(1);
      woke.fetch_add(1);
      done.count_down();
    });
  }
  done.wait();
  EXPECT_EQ(woke.load(), kSleepers);
  EXPECT_EQ(early.load(), 0);
}

FIBER_TEST(Sleep, ShortSleepIsNotHeldUpByALongOne) {
  // Ordering between sleepers is only guaranteed by their deadlines: the 1 ms sleeper must be
  // back while the other still sleeps, however loaded the machine.
  std::atomic<bool> long_done{false};
  testing::ParkLatch done(2);
  go([&] {
    this_fiber::sleep_for(200ms);
    long_done.store(true);
    done.count_down();
  });
  go([&] {
    this_fiber::sleep_for(1ms);
    done.count_down();
  });
  go([&] {});  // noise
  const auto start = Clock::now();
  this_fiber::sleep_for(2ms);
  if (Clock::now() - start < 150ms) {
    EXPECT_FALSE(long_done.load());
  }
  done.wait();
  EXPECT_TRUE(long_done.load());
}

// Timers live on the heap of the worker that queued them (timer_heaps.hpp). A worker busy in
// one fiber that never yields cannot fire its own: another worker must. The busy fiber queues a
// timer, then spins until its channel holds the tick, with a generous bound instead of a hang.
FIBER_TEST(Timers, ABusyWorkersTimersFireElsewhere) {
  if (workers() < 2) GTEST_SKIP() << "needs another worker to fire them";
  std::atomic<bool> fired{false};
  WaitGroup wg;
  wg.go([&] {
    Receiver<TimePoint> tick = after(1ms);  // queued on this fiber's worker
    const auto give_up = std::chrono::steady_clock::now() + 10s;
    while (tick.len() == 0 && std::chrono::steady_clock::now() < give_up) {
    }  // busy: never yields, so only another worker can fire it
    fired.store(tick.len() == 1);
  });
  wg.wait();
  EXPECT_TRUE(fired.load()) << "a timer on a busy worker's heap did not fire";
}

FIBER_TEST(Yield, LetsOtherFibersRunOnOneWorker) {
  // With one worker, two yielding fibers must interleave; with more they may run in parallel:
  // either way both finish and each observes the other's progress at least once per N yields.
  std::atomic<int> a{0}, b{0};
  testing::ParkLatch done(2);
  go([&] {
    for (int i = 0; i < 1000; ++i) {
      a.fetch_add(1);
      this_fiber::yield();
    }
    done.count_down();
  });
  go([&] {
    for (int i = 0; i < 1000; ++i) {
      b.fetch_add(1);
      this_fiber::yield();
    }
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(a.load() + b.load(), 2000);
}

TEST(SleepThread, WorksOutsideTheRuntime) {
  const auto start = Clock::now();
  this_fiber::sleep_for(2ms);
  EXPECT_GE(Clock::now() - start, 2ms);
  this_fiber::yield();
  EXPECT_EQ(this_fiber::id(), 0u);
}

}  // namespace
}  // namespace spindle
