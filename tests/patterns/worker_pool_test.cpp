// WorkerPool: every accepted task runs exactly once, backpressure (blocking, try, ctx), the
// hand-off mode, shutdown drains or abandons (returning what it abandoned), submits after or
// during shutdown are rejected with pool_closed, wait with a deadline, task exceptions are
// counted and rethrown once, bad settings throw.
#include <atomic>
#include <memory>
#include <stdexcept>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/patterns/worker_pool.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(WorkerPool, EveryTaskRunsExactlyOnce) {
  constexpr int kTasks = 5000;
  std::vector<std::atomic<int>> ran(kTasks);
  {
    WorkerPool pool({.workers = 4, .queue_capacity = 16});
    WaitGroup submitters;
    for (int s = 0; s < 4; ++s) {
      submitters.go([&, s] {
        for (int i = s; i < kTasks; i += 4) {
          ASSERT_FALSE(pool.submit([&ran, i] { ++ran[static_cast<std::size_t>(i)]; }));
        }
      });
    }
    submitters.wait();
    (void)pool.shutdown();
    EXPECT_FALSE(pool.wait());
    const PoolStats st = pool.stats();
    EXPECT_EQ(st.submitted, static_cast<std::uint64_t>(kTasks));
    EXPECT_EQ(st.completed, static_cast<std::uint64_t>(kTasks));
    EXPECT_EQ(st.queued, 0u);
    EXPECT_EQ(st.running, 0u);
  }
  for (auto& r : ran) ASSERT_EQ(r.load(), 1);
}

FIBER_TEST(WorkerPool, BackpressureAndTrySubmit) {
  WorkerPool pool({.workers = 1, .queue_capacity = 2});
  Chan<int> gate(0), started(4);
  ASSERT_FALSE(pool.submit([&] {
    started.send(1);
    (void)gate.recv();  // holds the only worker
  }));
  (void)started.recv();  // the worker is busy: nobody idle
  ASSERT_FALSE(pool.try_submit([] {}));
  ASSERT_FALSE(pool.try_submit([] {}));
  EXPECT_EQ(pool.try_submit([] {}), errc::queue_full);  // 2 queued = capacity
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg, ctx_wg;
  std::error_code blocked_ctx, blocked_plain;
  ctx_wg.go([&, ctx = ctx] { blocked_ctx = pool.submit(ctx, [] {}); });
  wg.go([&] { blocked_plain = pool.submit([] {}); });
  cancel();
  ctx_wg.wait();  // the ctx submit gave up (the queue stays full until the gate opens): not taken
  gate.close();   // frees the worker: room appears, the plain submit is accepted
  wg.wait();
  EXPECT_EQ(blocked_ctx, spindle::errc::canceled);
  EXPECT_FALSE(blocked_plain);
  (void)pool.shutdown();
  EXPECT_FALSE(pool.wait());
  const PoolStats st = pool.stats();
  EXPECT_EQ(st.completed, 4u);
  EXPECT_EQ(st.rejected, 1u);
}

FIBER_TEST(WorkerPool, HandOffWithZeroCapacity) {
  WorkerPool pool({.workers = 2, .queue_capacity = 0});
  Chan<int> gate(0), started(2);
  // Wait until both workers are idle: only then does a hand-off have a taker.
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(pool.submit([&] {
      started.send(1);
      (void)gate.recv();
    }));
  }
  (void)started.recv();
  (void)started.recv();
  EXPECT_EQ(pool.try_submit([] {}), errc::queue_full);  // both busy, no queue
  gate.close();
  (void)pool.shutdown();
  EXPECT_FALSE(pool.wait());
}

FIBER_TEST(WorkerPool, ShutdownRejectsSubmitsIncludingParkedOnes) {
  WorkerPool pool({.workers = 1, .queue_capacity = 1});
  Chan<int> gate(0), started(1);
  ASSERT_FALSE(pool.submit([&] {
    started.send(1);
    (void)gate.recv();
  }));
  (void)started.recv();
  ASSERT_FALSE(pool.submit([] {}));  // queued
  WaitGroup wg;
  std::error_code parked;
  std::atomic<bool> parked_ran{false};
  wg.go([&] { parked = pool.submit([&] { parked_ran = true; }); });
  ASSERT_TRUE(testing::wait_parked_on("cond wait", 1));  // the third submit waits for room
  (void)pool.shutdown(ShutdownMode::drain);
  wg.wait();
  EXPECT_EQ(parked, errc::pool_closed);
  EXPECT_EQ(pool.submit([] {}), errc::pool_closed);
  EXPECT_EQ(pool.try_submit([] {}), errc::pool_closed);
  EXPECT_EQ(pool.submit(background(), [] {}), errc::pool_closed);
  gate.close();
  EXPECT_FALSE(pool.wait());
  EXPECT_FALSE(parked_ran.load());
  EXPECT_EQ(pool.stats().completed, 2u);  // drain: the queued task still ran
}

FIBER_TEST(WorkerPool, AbandonReturnsQueuedTasksAndCancelsRunningOnes) {
  WorkerPool pool({.workers = 1, .queue_capacity = 10});
  Chan<int> started(1);
  std::atomic<int> saw_cancel{0}, ran{0};
  ASSERT_FALSE(pool.submit([&](const Context& ctx) {
    started.send(1);
    (void)ctx.done().recv();  // a long task that honours the pool's context
    ++saw_cancel;
  }));
  (void)started.recv();
  auto owned = std::make_unique<int>(42);  // move-only state in a task
  ASSERT_FALSE(pool.submit([&, p = std::move(owned)] { ran += *p; }));
  for (int i = 0; i < 4; ++i) ASSERT_FALSE(pool.submit([&] { ++ran; }));
  std::vector<WorkerPool::Task> dropped = pool.shutdown(ShutdownMode::abandon);
  EXPECT_EQ(dropped.size(), 5u);
  EXPECT_FALSE(pool.wait());
  EXPECT_EQ(saw_cancel.load(), 1);
  EXPECT_EQ(ran.load(), 0);
  const PoolStats st = pool.stats();
  EXPECT_EQ(st.abandoned, 5u);
  EXPECT_EQ(st.completed, 1u);
  // The caller may still run what was abandoned, elsewhere: nothing was lost.
  for (auto& t : dropped) t(background());
  EXPECT_EQ(ran.load(), 46);
}

FIBER_TEST(WorkerPool, WaitWithADeadline) {
  ManualClock clock;
  WorkerPool pool({.workers = 1});
  Chan<int> gate(0), started(1);
  ASSERT_FALSE(pool.submit([&] {
    started.send(1);
    (void)gate.recv();
  }));
  (void)started.recv();
  EXPECT_THROW((void)pool.wait(), ConfigError);  // before shutdown it could never return
  (void)pool.shutdown();
  WaitGroup wg;
  std::error_code got;
  wg.go([&] { got = pool.wait_for(10s, &clock); });
  clock.block_until_pending(1);
  clock.advance(10s);
  wg.wait();
  EXPECT_EQ(got, spindle::errc::deadline_exceeded);
  EXPECT_EQ(pool.stats().running, 1u);  // still in flight: the caller knows
  gate.close();
  EXPECT_FALSE(pool.wait());
}

FIBER_TEST(WorkerPool, TaskExceptionsAreCountedAndRethrownOnce) {
  WorkerPool pool({.workers = 2});
  ASSERT_FALSE(pool.submit([] { throw std::runtime_error("task 1"); }));
  ASSERT_FALSE(pool.submit([] {}));
  (void)pool.shutdown();
  EXPECT_THROW((void)pool.wait(), std::runtime_error);
  EXPECT_FALSE(pool.wait());  // delivered once
  EXPECT_EQ(pool.stats().failed, 1u);
  EXPECT_EQ(pool.stats().completed, 1u);
}

FIBER_TEST(WorkerPool, BadSettingsThrow) {
  EXPECT_THROW(WorkerPool({.workers = 0}), ConfigError);
  EXPECT_THROW(WorkerPool({.workers = -3}), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
