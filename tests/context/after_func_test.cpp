// after_func: f runs once in its own fiber after the context is done; stop() reports whether it
// prevented that (Go's TestAfterFunc* shapes), including stop racing cancel.
#include <atomic>
#include <cstdint>

#include <spindle/context.hpp>
#include <spindle/errgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::eventually;

namespace spindle {
namespace {

FIBER_TEST(AfterFunc, RunsOnceInItsOwnFiberAfterCancel) {
  auto [ctx, cancel] = with_cancel(background());
  std::atomic<int> runs{0};
  std::atomic<std::uint64_t> fiber{0};
  std::atomic<bool> saw_done{false};
  AfterFuncStop stop = after_func(ctx, [&, ctx = ctx] {
    saw_done = ctx.err() == canceled();
    fiber = this_fiber::id();
    ++runs;
  });
  EXPECT_EQ(detail::context_child_count(ctx), 1u);
  cancel();
  cancel();
  EXPECT_EQ(detail::context_child_count(ctx), 0u);
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  EXPECT_TRUE(saw_done.load());
  EXPECT_NE(fiber.load(), this_fiber::id());
  EXPECT_FALSE(stop.stop());  // f has started
  ASSERT_TRUE(testing::wait_other_fibers_at_most(0));
  EXPECT_EQ(runs.load(), 1);
}

FIBER_TEST(AfterFunc, StopBeforeCancelPreventsIt) {
  auto [ctx, cancel] = with_cancel(background());
  std::atomic<int> runs{0};
  AfterFuncStop stop = after_func(ctx, [&] { ++runs; });
  EXPECT_TRUE(stop.stop());
  EXPECT_FALSE(stop.stop());  // already stopped
  EXPECT_EQ(detail::context_child_count(ctx), 0u);
  cancel();
  ASSERT_TRUE(testing::wait_other_fibers_at_most(0));
  EXPECT_EQ(runs.load(), 0);
}

FIBER_TEST(AfterFunc, AlreadyDoneRunsPromptly) {
  auto [ctx, cancel] = with_timeout(background(), 0s);
  std::atomic<int> runs{0};
  AfterFuncStop stop = after_func(ctx, [&] { ++runs; });
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  EXPECT_FALSE(stop.stop());
}

FIBER_TEST(AfterFunc, NeverDoneNeverRuns) {
  std::atomic<int> runs{0};
  AfterFuncStop stop = after_func(background(), [&] { ++runs; });
  EXPECT_TRUE(stop.stop());
  EXPECT_FALSE(stop.stop());
  AfterFuncStop none;
  EXPECT_FALSE(none.stop());
  EXPECT_EQ(runs.load(), 0);
}

FIBER_TEST(AfterFunc, DroppedHandleStillRuns) {
  static constexpr ContextKey<int> kUnused{"unused"};
  auto [ctx, cancel] = with_cancel(with_value(background(), kUnused, 1));
  std::atomic<int> runs{0};
  (void)after_func(ctx, [&] { ++runs; });
  (void)after_func(ctx, [&] { ++runs; });
  cancel();
  ASSERT_TRUE(eventually([&] { return runs.load() == 2; }));
}

FIBER_TEST(AfterFunc, OnDeadline) {
  auto [ctx, cancel] = with_timeout(background(), 1ms);
  std::atomic<int> runs{0};
  (void)after_func(ctx, [&] { ++runs; });
  ASSERT_TRUE(eventually([&] { return runs.load() == 1; }));
  EXPECT_EQ(ctx.err(), make_error_code(errc::deadline_exceeded));
}

// stop() racing cancel: exactly one of "stop prevented f" and "f ran" holds, every time.
FIBER_TEST(AfterFunc, StopRacesCancel) {
  constexpr int kRounds = 3000;
  std::atomic<int> ran{0};
  int stopped = 0;
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_cancel(background());
    AfterFuncStop stop = after_func(r.ctx, [&] { ++ran; });
    ErrGroup g;
    g.go([&r] { r.cancel(); });
    stopped += stop.stop() ? 1 : 0;
    (void)g.wait();
    EXPECT_EQ(detail::context_child_count(r.ctx), 0u);
  }
  ASSERT_TRUE(testing::wait_other_fibers_at_most(0));
  EXPECT_EQ(ran.load() + stopped, kRounds);
}

}  // namespace
}  // namespace spindle
