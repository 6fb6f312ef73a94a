// Fairness: a pair of fibers handing off to each other through run_next must not starve the
// other runnable fibers of their worker (once the oldest queued fiber has waited a millisecond,
// a pick takes it first; the check runs every 61st pick),
// nor its timers and the global queue: the pair switches directly to each other, and only the
// scheduler loop (which still runs every 8th pick) fires timers and looks at the global queue.
#include <atomic>
#include <cstdlib>
#include <chrono>
#include <thread>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

FIBER_TEST(Fairness, PingPongPairDoesNotStarveAQueuedFiber) {
  std::atomic<bool> stop{false};
  Chan<int> ping(0), pong(0);
  WaitGroup wg;
  wg.go([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      ping.send(1);
      (void)pong.recv();
    }
    ping.close();
  });
  wg.go([&] {
    for (int v : ping) pong.send(v);
  });
  // Queued behind the pair on the same worker: it must get its turn.
  wg.go([&] { stop.store(true, std::memory_order_relaxed); });
  wg.wait();
  EXPECT_TRUE(stop.load());
}

// A worker busy in one fiber that never yields still has its queued fibers taken by the others:
// its short ring once the owner is seen not to switch for 10 us (Worker::stalled), the run_next one
// after the idle poll. The busy fiber waits for both, with a generous bound instead of a hang.
FIBER_TEST(Fairness, BusyWorkerLosesItsQueuedFibersToIdleOnes) {
  if (workers() < 2) GTEST_SKIP() << "needs another worker to take them";
  std::atomic<int> ran{0};
  std::atomic<bool> in_time{false};
  WaitGroup wg;
  wg.go([&] {
    wg.go([&] { ran.fetch_add(1); });  // queued in the ring once the next one takes run_next
    wg.go([&] { ran.fetch_add(1); });  // run_next
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ran.load() < 2 && std::chrono::steady_clock::now() < give_up) {
    }  // busy: never yields, so only another worker can run them
    in_time.store(ran.load() == 2);
  });
  wg.wait();
  EXPECT_TRUE(in_time.load()) << ran.load() << " of 2 queued fibers ran while their worker was busy";
}

// The other workers went to sleep while this one ran a fiber and queued nothing; then it queues
// work without waking anyone (a spawn's run_next, a yield's requeue) and runs a fiber that never
// switches. The idle workers must come and look (Worker::sleep_idle polls a busy peer): before,
// the yielder below waited behind the hog forever (TSan CI, Dump.FibersStartedElsewhereAreListedOnce).
FIBER_TEST(Fairness, YielderQueuedBehindAHogRunsWhileOthersSlept) {
  if (workers() < 2) GTEST_SKIP() << "needs another worker to take it";
  // Let the other workers run dry and sleep while this fiber runs without queueing anything.
  // (Bounded: they may have gone to sleep before `slept` was read.)
  const std::uint64_t slept = runtime_stats().idle_sleeps;
  const auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
  while (runtime_stats().idle_sleeps < slept + static_cast<std::uint64_t>(workers() - 1) &&
         std::chrono::steady_clock::now() < settle) {
  }
  std::atomic<bool> hog_running{false};
  std::atomic<bool> release{false};
  bool released = false;
  WaitGroup wg;
  wg.go([&] {  // run_next of this worker: no wake-up
    hog_running.store(true);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!release.load() && std::chrono::steady_clock::now() < give_up) {
    }  // never yields: only another worker can run the yielder
    released = release.load();
  });
  while (!hog_running.load()) this_fiber::yield();
  release.store(true);
  wg.wait();
  EXPECT_TRUE(released) << "the yielder did not run again while the hog ran (10 s)";
}

// Hands off between two fibers until `stop`.
void ping_pong_until(const std::atomic<bool>& stop, WaitGroup& wg) {
  Chan<int> ping(0), pong(0);
  wg.go([&stop, ping, pong] {
    while (!stop.load(std::memory_order_relaxed)) {
      ping.send(1);
      (void)pong.recv();
    }
    ping.close();
  });
  wg.go([ping, pong] {
    for (int v : ping) pong.send(v);
  });
}

FIBER_TEST(Fairness, PingPongPairDoesNotStarveATimer) {
  std::atomic<bool> stop{false};
  WaitGroup wg;
  ping_pong_until(stop, wg);
  // The timer is what is tested here: it must fire while the pair keeps the worker busy.
  wg.go([&] {
    this_fiber::sleep_for(std::chrono::milliseconds(1));
    stop.store(true, std::memory_order_relaxed);
  });
  wg.wait();
  EXPECT_TRUE(stop.load());
}

FIBER_TEST(Fairness, PingPongPairDoesNotStarveTheGlobalQueue) {
  std::atomic<bool> stop{false};
  WaitGroup wg;
  ping_pong_until(stop, wg);
  // A plain thread's send readies the receiver through the global queue.
  Chan<int> from_outside(0);
  wg.go([&] {
    (void)from_outside.recv();
    stop.store(true, std::memory_order_relaxed);
  });
  std::thread outside([from_outside] { from_outside.send(1); });
  wg.wait();
  outside.join();
  EXPECT_TRUE(stop.load());
}

// A fiber that yields in a loop until the fibers it spawned have run must let them run. More
// than a ring holds spill to the global queue, which a worker takes from when its own queue
// runs dry, and after a yield (Go's Gosched queues the yielder behind the global queue); a
// worker kept busy by the yielder would otherwise serve its backlog only once a millisecond.
FIBER_TEST(Fairness, YieldingLoopLetsTheSpilledBacklogRun) {
  constexpr int kFibers = 20'000;  // 78 rings' worth: most of them spill
  std::atomic<int> ran{0};
  for (int i = 0; i < kFibers; ++i) go([&ran] { ran.fetch_add(1, std::memory_order_relaxed); });
  long yields = 0;
  constexpr long kYieldCap = 50L * kFibers;  // fail, rather than take a millisecond a fiber
  while (ran.load(std::memory_order_relaxed) < kFibers && yields < kYieldCap) {
    this_fiber::yield();
    ++yields;
  }
  EXPECT_EQ(ran.load(), kFibers) << "after " << yields << " yields";
  // On failure some have not run yet, and they refer to `ran`.
  while (num_fibers() > 1) this_fiber::yield();
}

// A fiber woken while a spawning loop's backlog spills to the global queue must not wait behind
// that backlog: fibers holding a stack are spilled ahead of unstarted ones (Scheduler::spill).
// With one spilled queue, 100k sleepers woken during such a loop ran up to 75 ms late.
FIBER_TEST_AT(Fairness, WokenFiberIsNotQueuedBehindTheUnstartedBacklog, 1) {
  if (std::getenv("SPINDLE_FORCE_MIGRATION") != nullptr) {
    GTEST_SKIP() << "force-migration mode queues fibers by the worker they last ran on";
  }
  constexpr int kBefore = 4'000;  // spawned before the wake: most wait unstarted, spilled
  constexpr int kAfter = 1'000;   // spawned after: they push the woken fiber down the ring and out
  std::atomic<int> order{0};
  std::atomic<bool> waiting{false};
  int woken_at = -1;
  std::vector<int> ran_at(kBefore, -1);
  Chan<int> wake(1);
  WaitGroup wg;
  wg.go([&] {
    waiting.store(true);
    (void)wake.recv();
    woken_at = order.fetch_add(1);
  });
  while (!waiting.load()) this_fiber::yield();  // one worker: it is parked when we run again
  for (int i = 0; i < kBefore; ++i) wg.go([&, i] { ran_at[static_cast<std::size_t>(i)] = order.fetch_add(1); });
  wake.send(1);  // readied into this worker's run_next
  for (int i = 0; i < kAfter; ++i) wg.go([&] { order.fetch_add(1); });
  wg.wait();
  int ran_before_it = 0;
  for (int at : ran_at) ran_before_it += at < woken_at;
  // Without the ordering it ran after ~3,800 of them: the backlog spilled before it was woken.
  EXPECT_LT(ran_before_it, kBefore / 4) << "the woken fiber ran " << woken_at << "th";
}

}  // namespace
}  // namespace spindle
