// Once: exactly once under concurrency, callers wait for the running call, exceptions, the
// internal timed form, lifetime.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include <spindle/once.hpp>
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

FIBER_TEST(Once, ExactlyOnceUnderThousandConcurrentCallers) {
  Once once;
  std::atomic<int> runs{0};
  int value = 0;  // written by f, read by every caller after call() returns: TSan checks it
  std::atomic<int> saw_value{0};
  constexpr int kCallers = 1'000;
  WaitGroup wg;
  for (int i = 0; i < kCallers; ++i) {
    wg.go([&] {
      once.call([&] {
        runs.fetch_add(1);
        for (int k = 0; k < 10; ++k) this_fiber::yield();  // let the others pile up and park
        value = 42;
      });
      if (value == 42) saw_value.fetch_add(1);
    });
  }
  wg.wait();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(saw_value.load(), kCallers);
  EXPECT_TRUE(once.done());
}

FIBER_TEST(Once, PlainThreadsAndFibersTogether) {
  Once once;
  std::atomic<int> runs{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] { once.call([&] { runs.fetch_add(1); }); });
  }
  WaitGroup wg;
  for (int i = 0; i < 100; ++i) wg.go([&] { once.call([&] { runs.fetch_add(1); }); });
  wg.wait();
  for (auto& t : threads) t.join();
  EXPECT_EQ(runs.load(), 1);
}

FIBER_TEST(Once, ThrowingFunctionCountsAsDone) {
  // Go: if f panics, Do considers it to have returned. The exception reaches the caller that
  // ran f; waiting callers and later calls return normally and run nothing.
  Once once;
  std::atomic<int> runs{0};
  std::atomic<int> threw{0};
  std::atomic<int> returned{0};
  WaitGroup wg;
  for (int i = 0; i < 50; ++i) {
    wg.go([&] {
      try {
        once.call([&] {
          runs.fetch_add(1);
          for (int k = 0; k < 10; ++k) this_fiber::yield();
          throw std::runtime_error("init failed");
        });
        returned.fetch_add(1);
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "init failed");
        threw.fetch_add(1);
      }
    });
  }
  wg.wait();
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(threw.load(), 1);
  EXPECT_EQ(returned.load(), 49);
  EXPECT_TRUE(once.done());
  once.call([&] { runs.fetch_add(1); });
  EXPECT_EQ(runs.load(), 1);
}

FIBER_TEST(Once, TimedWaitForRunningCallGivesUp) {
  // detail_call (the form Context overloads use): a caller that must wait for another caller's
  // f gives up at its deadline without running f and without leaving a trace.
  Once once;
  WaitGroup entered;
  WaitGroup release;
  entered.add(1);
  release.add(1);
  WaitGroup runner;
  runner.go([&] {
    once.call([&] {
      entered.done();
      release.wait();
    });
  });
  entered.wait();  // the runner is inside f now
  const TimePoint start = Clock::now();
  std::atomic<int> ran_by_timed{0};
  const auto r = once.detail_call([&] { ran_by_timed.fetch_add(1); },
                                  Clock::now() + std::chrono::milliseconds(2), nullptr);
  EXPECT_EQ(r, detail::WakeReason::timeout);
  EXPECT_GE(Clock::now() - start, std::chrono::milliseconds(2));
  EXPECT_FALSE(once.done());
  release.done();
  runner.wait();
  EXPECT_TRUE(once.done());
  EXPECT_EQ(once.detail_call([&] { ran_by_timed.fetch_add(1); }, Clock::now(), nullptr),
            detail::WakeReason::notified);
  EXPECT_EQ(ran_by_timed.load(), 0);
}

FIBER_TEST(Once, TimeoutRacingCompletion) {
  const int rounds = race_rounds();
  // A timed caller's deadline races the end of the runner's f (which lands within +-15 us of
  // it). A timed caller that reports notified saw f complete; one that reports timeout left no
  // trace (ASan with detect_stack_use_after_return catches a Waiter left queued). The Once is
  // freed once both calls have returned.
  int completed = 0;
  int timed_out = 0;
  for (int round = 0; round < rounds; ++round) {
    auto* once = new Once;
    std::atomic<TimePoint::rep> finish_at{0};
    WaitGroup entered;
    entered.add(1);
    WaitGroup runner;
    runner.go([&] {
      once->call([&] {
        entered.done();
        while (finish_at.load() == 0) this_fiber::yield();
        yield_until(TimePoint(Duration(finish_at.load())));
      });
    });
    entered.wait();
    const TimePoint dl = Clock::now() + std::chrono::microseconds(30);
    finish_at.store((dl + std::chrono::microseconds(round % 31 - 15)).time_since_epoch().count());
    const auto r = once->detail_call([] {}, dl, nullptr);
    if (r == detail::WakeReason::notified) {
      EXPECT_TRUE(once->done());
      ++completed;
    } else {
      ++timed_out;
    }
    runner.wait();
    delete once;
  }
  EXPECT_EQ(completed + timed_out, rounds);
  if (!force_migration()) {
    EXPECT_GT(completed, 0);
    EXPECT_GT(timed_out, 0);
  }
}

FIBER_TEST(Once, DestroyedByLastWaiter) {
  // Parked callers return once the runner has finished waking them; the last one to return
  // frees the Once.
  constexpr int kRounds = kSanitized ? 200 : 2'000;
  for (int round = 0; round < kRounds; ++round) {
    auto* once = new Once;
    std::atomic<int> left{4};
    WaitGroup wg;
    for (int i = 0; i < 4; ++i) {
      wg.go([once, &left, i, round] {
        once->call([&] {
          if ((i + round) % 2 == 0) this_fiber::yield();
        });
        if (left.fetch_sub(1) == 1) delete once;
      });
    }
    wg.wait();
  }
}

}  // namespace
}  // namespace spindle
