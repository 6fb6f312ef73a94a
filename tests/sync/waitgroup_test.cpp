// WaitGroup: exact joins, waits from plain threads, exceptions from go(), misuse, timed waits,
// reuse and lifetime.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <spindle/errors.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"
#include "support/polling.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using testing::force_migration;
using testing::race_rounds;
using testing::yield_until;

constexpr bool kSanitized = testing::kAsan || testing::kTsan;

FIBER_TEST(WaitGroup, GoJoinsEveryFiber) {
  WaitGroup wg;
  std::atomic<int> ran{0};
  constexpr int kN = 1'000;
  for (int i = 0; i < kN; ++i) wg.go([&] { ran.fetch_add(1, std::memory_order_relaxed); });
  wg.wait();
  EXPECT_EQ(ran.load(), kN);
}

FIBER_TEST(WaitGroup, DoneHappensBeforeWaitReturns) {
  // Plain (non-atomic) writes made before done() are visible after wait(): TSan checks it.
  constexpr int kN = 100;
  std::vector<int> slots(kN, 0);
  WaitGroup wg;
  for (int i = 0; i < kN; ++i) wg.go([&slots, i] { slots[i] = i + 1; });
  wg.wait();
  for (int i = 0; i < kN; ++i) EXPECT_EQ(slots[i], i + 1);
}

FIBER_TEST(WaitGroup, GoPassesArguments) {
  WaitGroup wg;
  std::atomic<int> sum{0};
  for (int i = 1; i <= 10; ++i) {
    wg.go([&sum](int a, std::string b) { sum.fetch_add(a + static_cast<int>(b.size())); }, i,
          std::string("xy"));
  }
  wg.wait();
  EXPECT_EQ(sum.load(), 55 + 20);
}

FIBER_TEST(WaitGroup, WaitFromPlainThreadWhileFibersCallDone) {
  constexpr int kN = 200;
  WaitGroup wg;
  wg.add(kN);
  std::atomic<int> finished{0};
  std::atomic<bool> waiter_returned{false};
  std::thread waiter([&] {
    wg.wait();  // a plain thread outside the runtime: parks on a futex
    EXPECT_EQ(finished.load(), kN);
    waiter_returned.store(true);
  });
  WaitGroup fibers;
  for (int i = 0; i < kN; ++i) {
    fibers.go([&] {
      this_fiber::yield();
      finished.fetch_add(1);
      wg.done();
    });
  }
  fibers.wait();
  waiter.join();
  EXPECT_TRUE(waiter_returned.load());
}

TEST(WaitGroupOutsideRuntime, MainThreadWaitsBeforeRunReturns) {
  // The test's own thread (not a fiber, not a worker) waits for fibers of a runtime that runs
  // on another thread; that runtime's main fiber is itself held open until the wait returned,
  // so the wake-up is delivered while the runtime runs. Then the plain thread wakes a fiber.
  constexpr int kN = 100;
  WaitGroup fibers_done;
  WaitGroup main_may_return;
  fibers_done.add(kN);
  main_may_return.add(1);
  std::atomic<int> finished{0};
  std::thread runtime([&] {
    Options opts;
    opts.workers = 2;
    spindle::run(opts, [&] {
      WaitGroup inner;
      for (int i = 0; i < kN; ++i) {
        inner.go([&] {
          finished.fetch_add(1);
          fibers_done.done();
        });
      }
      inner.wait();
      main_may_return.wait();  // a fiber woken by the plain thread's done()
    });
  });
  fibers_done.wait();
  EXPECT_EQ(finished.load(), kN);
  main_may_return.done();
  runtime.join();
}

TEST(WaitGroupOutsideRuntime, TimedWaitOnPlainThread) {
  WaitGroup wg;
  wg.add(1);
  EXPECT_FALSE(wg.wait_for(std::chrono::milliseconds(2)));
  wg.done();
  EXPECT_TRUE(wg.wait_for(std::chrono::milliseconds(0)));
  wg.wait();
}

FIBER_TEST(WaitGroup, GoExceptionPropagatesToWait) {
  WaitGroup wg;
  std::atomic<int> ran{0};
  wg.go([] { throw std::runtime_error("boom"); });
  for (int i = 0; i < 50; ++i) wg.go([&] { ran.fetch_add(1); });
  try {
    wg.wait();
    ADD_FAILURE() << "wait() did not rethrow the fiber's exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_EQ(ran.load(), 50);
  // Rethrown once: the group is clean and reusable.
  wg.wait();
  wg.go([&] { ran.fetch_add(1); });
  wg.wait();
  EXPECT_EQ(ran.load(), 51);
}

FIBER_TEST(WaitGroup, OnlyTheFirstOfManyExceptionsIsKept) {
  WaitGroup wg;
  constexpr int kThrowers = 100;
  for (int i = 0; i < kThrowers; ++i) wg.go([i] { throw std::runtime_error(std::to_string(i)); });
  int caught = 0;
  try {
    wg.wait();
  } catch (const std::runtime_error&) {
    ++caught;
  }
  EXPECT_EQ(caught, 1);
  wg.wait();  // the others were dropped
}

FIBER_TEST(WaitGroup, NegativeCounterThrowsAndLeavesItUnchanged) {
  WaitGroup wg;
  try {
    wg.done();
    ADD_FAILURE() << "done() on a zero counter did not throw";
  } catch (const SyncError& e) {
    EXPECT_STREQ(e.what(), "sync: negative WaitGroup counter");
  }
  wg.add(2);
  EXPECT_THROW(wg.add(-3), SyncError);
  wg.done();
  EXPECT_FALSE(wg.wait_for(std::chrono::microseconds(100)));  // still 1
  wg.done();
  wg.wait();
  EXPECT_THROW(wg.add(std::int64_t{1} << 40), SyncError);
}

FIBER_TEST(WaitGroup, WaitForTimesOutThenReusable) {
  WaitGroup wg;
  wg.add(1);
  WaitGroup timed;
  std::atomic<int> timeouts{0};
  for (int i = 0; i < 10; ++i) {
    timed.go([&] {
      if (!wg.wait_for(std::chrono::milliseconds(1))) timeouts.fetch_add(1);
    });
  }
  timed.wait();
  EXPECT_EQ(timeouts.load(), 10);
  EXPECT_FALSE(wg.wait_until(Clock::now() - std::chrono::seconds(1)));
  wg.done();
  wg.wait();
  // Reuse: several rounds on the same group.
  for (int round = 0; round < 100; ++round) {
    std::atomic<int> ran{0};
    for (int i = 0; i < 10; ++i) wg.go([&] { ran.fetch_add(1); });
    EXPECT_TRUE(wg.wait_for(std::chrono::seconds(30)));
    EXPECT_EQ(ran.load(), 10);
  }
}

FIBER_TEST(WaitGroup, TimeoutRacingLastDoneCountsExactly) {
  const int rounds = race_rounds();
  // The last done() lands within +-15 us of the waiter's deadline. Either the wait reports
  // success or it times out with the counter still positive; and the WaitGroup, allocated per
  // round, is freed as soon as the final wait returns (ASan checks the done() side never
  // touches it afterwards, including when the timed-out waiter had been counted by done()).
  int succeeded = 0;
  int timed_out = 0;
  for (int round = 0; round < rounds; ++round) {
    auto* wg = new WaitGroup;
    wg->add(1);
    std::atomic<TimePoint::rep> deadline{0};
    bool ok = false;
    WaitGroup waiter;
    waiter.go([&] {
      const TimePoint dl = Clock::now() + std::chrono::microseconds(30);
      deadline.store(dl.time_since_epoch().count());
      ok = wg->wait_until(dl);
      if (!ok) wg->wait();
      delete wg;
    });
    while (deadline.load() == 0) this_fiber::yield();
    yield_until(TimePoint(Duration(deadline.load())) + std::chrono::microseconds(round % 31 - 15));
    wg->done();  // may be the done() that frees the waiter, which then deletes wg
    waiter.wait();
    (ok ? succeeded : timed_out) += 1;
  }
  EXPECT_EQ(succeeded + timed_out, rounds);
  if (!force_migration()) {
    EXPECT_GT(succeeded, 0);
    EXPECT_GT(timed_out, 0);
  }
}

FIBER_TEST(WaitGroup, DestroyedRightAfterWaitReturns) {
  // Many concurrent done()s; the waiter frees the group as soon as wait() returns.
  constexpr int kRounds = kSanitized ? 200 : 2'000;
  constexpr int kDoers = 8;
  for (int round = 0; round < kRounds; ++round) {
    auto* wg = new WaitGroup;
    wg->add(kDoers);
    WaitGroup doers;
    for (int i = 0; i < kDoers; ++i) {
      doers.go([wg, i, round] {
        if ((i + round) % 3 == 0) this_fiber::yield();
        wg->done();
      });
    }
    wg->wait();
    delete wg;
    doers.wait();
  }
}

FIBER_TEST(WaitGroup, ManyWaitersAllReleased) {
  WaitGroup gate;
  gate.add(1);
  WaitGroup waiters;
  std::atomic<int> released{0};
  constexpr int kWaiters = 500;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.go([&] {
      gate.wait();
      released.fetch_add(1);
    });
  }
  this_fiber::yield();
  gate.done();
  waiters.wait();
  EXPECT_EQ(released.load(), kWaiters);
}

TEST(WaitGroupOutsideRuntime, GoWithoutRuntimeThrowsAndUndoesAdd) {
  WaitGroup wg;
  EXPECT_THROW(wg.go([] {}), RuntimeError);
  EXPECT_TRUE(wg.wait_for(std::chrono::milliseconds(0)));  // the add(1) was undone
}

}  // namespace
}  // namespace spindle
