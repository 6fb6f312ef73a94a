// The blocking pool: results and exceptions come back, workers stay free, the context form
// returns early, the bound holds, and the deadlock detector counts a fiber in a blocking call.
#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <memory>
#include <stdexcept>
#include <thread>

#include <spindle/context.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

FIBER_TEST(Blocking, ReturnsTheResultOrRethrows) {
  EXPECT_EQ(blocking([] { return 42; }), 42);
  int side = 0;
  blocking([&] { side = 7; });  // by reference: the caller waits
  EXPECT_EQ(side, 7);
  EXPECT_THROW(blocking([]() -> int { throw std::runtime_error("boom"); }), std::runtime_error);
  auto moved = blocking([] { return std::make_unique<int>(5); });
  EXPECT_EQ(*moved, 5);
}

FIBER_TEST(Blocking, RunsOffTheWorkersWhichStayFree) {
  // Each call blocks its thread until a fiber releases it: if calls ran on a worker, at one
  // worker the releasing fiber could never run.
  constexpr int kCalls = 16;
  auto gate = std::make_shared<std::promise<void>>();
  std::shared_future<void> opened = gate->get_future().share();
  std::atomic<int> on_fiber{0}, started{0};
  WaitGroup wg;
  for (int i = 0; i < kCalls; ++i) {
    wg.go([&] {
      blocking([&] {
        if (detail::in_fiber()) ++on_fiber;
        ++started;
        opened.wait();
      });
    });
  }
  while (started.load() < kCalls) this_fiber::yield();
  gate->set_value();
  wg.wait();
  EXPECT_EQ(on_fiber.load(), 0);
}

FIBER_TEST(Blocking, ContextEndsTheWaitWhileTheCallFinishesOnThePool) {
  auto release = std::make_shared<std::promise<void>>();
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto finished = std::make_shared<std::atomic<bool>>(false);
  std::shared_future<void> opened = release->get_future().share();
  auto [ctx, cancel] = with_cancel(background());
  std::error_code got;
  WaitGroup wg;
  wg.go([&, ctx = ctx] {
    auto r = blocking(ctx, [opened, started, finished] {  // by value: it outlives the call
      started->store(true);
      opened.wait();
      finished->store(true);
      return 1;
    });
    got = r.err;
    EXPECT_FALSE(r.value.has_value());
  });
  // Cancel only once the call runs on the pool (a call cancelled while still queued never runs,
  // and would never finish below).
  while (!started->load()) this_fiber::yield();
  cancel();
  wg.wait();
  EXPECT_EQ(got, errc::canceled);
  EXPECT_FALSE(finished->load());
  release->set_value();  // the orphaned call completes on its own; nobody is woken
  while (!finished->load()) this_fiber::yield();

  // Already done: fn never runs.
  std::atomic<bool> ran{false};
  auto [done_ctx, done_cancel] = with_cancel(background());
  done_cancel();
  EXPECT_EQ(blocking(done_ctx, [&ran] { ran = true; }), errc::canceled);
  EXPECT_FALSE(ran.load());
  // Not cancelled: the value comes back; so does an exception.
  auto ok = blocking(background(), [] { return std::string("v"); });
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok.value, "v");
  EXPECT_THROW((void)blocking(background(), []() -> int { throw std::logic_error("x"); }),
               std::logic_error);
}

FIBER_TEST(Blocking, ThePoolBoundLimitsConcurrency) {
  const int old = blocking_threads();
  set_blocking_threads(2);
  std::atomic<int> running{0}, peak{0}, done{0};
  WaitGroup wg;
  for (int i = 0; i < 12; ++i) {
    wg.go([&] {
      blocking([&] {
        const int now = ++running;
        int p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(2ms);  // a blocking call: what the pool is for
        --running;
        ++done;
      });
    });
  }
  wg.wait();
  set_blocking_threads(old);
  EXPECT_EQ(done.load(), 12);
  EXPECT_LE(peak.load(), 2);
}

TEST(BlockingDeadlock, AFiberInABlockingCallIsNotADeadlock) {
  // The only fiber waits in blocking() longer than the deadlock grace period: the detector must
  // count it as woken from outside and not stop the runtime.
  Options opts;
  opts.workers = 1;
  opts.deadlock_grace = std::chrono::milliseconds(20);
  opts.on_deadlock = Options::OnDeadlock::throw_from_run;
  int v = 0;
  EXPECT_NO_THROW(spindle::run(opts, [&] {
    v = blocking([] {
      std::this_thread::sleep_for(200ms);  // ten grace periods, outside the runtime
      return 3;
    });
  }));
  EXPECT_EQ(v, 3);
}

TEST(BlockingPlainThread, RunsInlineOutsideTheRuntime) {
  EXPECT_EQ(blocking([] { return 9; }), 9);
}

}  // namespace
}  // namespace spindle
