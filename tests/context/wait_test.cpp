// Context-aware waits (sleep_for/sleep_until, the Interrupt every blocking call uses): woken
// promptly with the context's error, nothing left registered, at scale and under races.
#include <atomic>
#include <thread>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/errgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::deadline_exceeded;
using spindle::testing::eventually;
using spindle::testing::wait_done;

namespace spindle {
namespace {

FIBER_TEST(ContextWait, SleepCompletes) {
  auto [ctx, cancel] = with_cancel(background());
  const TimePoint start = Clock::now();
  EXPECT_FALSE(this_fiber::sleep_for(ctx, 2ms));
  EXPECT_GE(Clock::now() - start, 2ms);
  EXPECT_FALSE(this_fiber::sleep_for(ctx, 0s));
  EXPECT_FALSE(this_fiber::sleep_for(background(), 1ms));
  EXPECT_EQ(detail::context_waiter_count(ctx), 0u);
}

FIBER_TEST(ContextWait, AlreadyDoneReturnsAtOnce) {
  auto [ctx, cancel] = with_cancel(background());
  cancel();
  EXPECT_EQ(this_fiber::sleep_for(ctx, 1h), canceled());
  EXPECT_EQ(this_fiber::sleep_for(ctx, 0s), canceled());
  EXPECT_EQ(this_fiber::sleep_until(ctx, Clock::now() - 1s), canceled());
}

FIBER_TEST(ContextWait, CancelWakesSleeper) {
  auto [ctx, cancel] = with_cancel(background());
  ErrGroup g;
  std::error_code got;
  g.go([&, ctx = ctx] { got = this_fiber::sleep_for(ctx, 1h); });
  ASSERT_TRUE(eventually([&] { return detail::context_waiter_count(ctx) == 1; }));
  cancel();
  (void)g.wait();
  EXPECT_EQ(got, canceled());
  EXPECT_EQ(detail::context_waiter_count(ctx), 0u);
}

FIBER_TEST(ContextWait, DeadlineWakesSleeper) {
  // Read before the context is made: its deadline counts from then (read after, the wait could
  // measure a little under 3 ms, as it once did).
  const TimePoint start = Clock::now();
  auto [ctx, cancel] = with_timeout(background(), 3ms);
  EXPECT_EQ(this_fiber::sleep_for(ctx, 1h), deadline_exceeded());
  EXPECT_GE(Clock::now() - start, 3ms);
  // A sleep shorter than the deadline completes.
  auto [ctx2, cancel2] = with_timeout(background(), 1h);
  EXPECT_FALSE(this_fiber::sleep_for(ctx2, 1ms));
}

// 100,000 contexts, each watched by its own parked fiber: cancelling the root wakes them all
// with the root's error, and afterwards nothing is registered anywhere.
FIBER_TEST_AT(ContextWait, HundredThousandWatchedContexts, 1, 4) {
  constexpr int kN = testing::kManyFibers;
  auto root = with_cancel_cause(background());
  std::vector<CancelableContext> kids;
  kids.reserve(kN);
  for (int i = 0; i < kN; ++i) kids.push_back(with_cancel(root.ctx));
  std::atomic<int> woke{0}, wrong{0};
  {
    ErrGroup g;
    for (int i = 0; i < kN; ++i) {
      if (i % 1024 == 0) this_fiber::yield();  // a long spawn loop: let others run
      g.go([&, ctx = kids[i].ctx] {
        if (wait_done(ctx) == canceled()) {
          ++woke;
        } else {
          ++wrong;
        }
      });
    }
    ASSERT_TRUE(eventually(
        [&] {
          std::size_t parked = 0;
          for (auto& k : kids) parked += detail::context_waiter_count(k.ctx);
          return parked == kN;
        },
        60s));
    root.cancel.cancel(make_error_code(std::errc::connection_aborted));
    (void)g.wait();
  }
  EXPECT_EQ(woke.load(), kN);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(detail::context_child_count(root.ctx), 0u);
  std::size_t left = 0;
  for (auto& k : kids) {
    left += detail::context_waiter_count(k.ctx) + detail::context_child_count(k.ctx);
    EXPECT_EQ(cause(k.ctx), make_error_code(std::errc::connection_aborted));
  }
  EXPECT_EQ(left, 0u);
}

// The same number of fibers all watching one context.
FIBER_TEST_AT(ContextWait, HundredThousandWatchersOfOneContext, 1, 4) {
  constexpr int kN = testing::kManyFibers;
  auto root = with_cancel(background());
  static constexpr ContextKey<int> kDepth{"depth"};
  const Context ctx = with_value(root.ctx, kDepth, 0);  // watched through a value node
  std::atomic<int> woke{0};
  {
    ErrGroup g;
    for (int i = 0; i < kN; ++i) {
      if (i % 1024 == 0) this_fiber::yield();  // a long spawn loop: let others run
      g.go([&] { woke += wait_done(ctx) == canceled() ? 1 : 0; });
    }
    ASSERT_TRUE(eventually([&] { return detail::context_waiter_count(ctx) == kN; }, 60s));
    root.cancel();
    (void)g.wait();
  }
  EXPECT_EQ(woke.load(), kN);
  EXPECT_EQ(detail::context_waiter_count(ctx), 0u);
}

// Cancellation racing the end of a sleep, thousands of times: every wait ends with exactly one
// outcome (slept fully, or canceled), consistent with what the context says, and leaves no
// registration behind.
FIBER_TEST(ContextWait, CancelRacesSleepCompletion) {
  constexpr int kRounds = 4000;
  int full = 0, cancelled = 0, bad = 0;
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_cancel(background());
    ErrGroup g;
    g.go([&r] { r.cancel(); });
    const std::error_code ec = this_fiber::sleep_for(r.ctx, std::chrono::microseconds(i % 50));
    if (!ec) {
      ++full;
    } else if (ec == canceled() && r.ctx.err() == canceled()) {
      ++cancelled;
    } else {
      ++bad;
    }
    (void)g.wait();
    EXPECT_EQ(detail::context_waiter_count(r.ctx), 0u);
  }
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(full + cancelled, kRounds);
}

// Deadlines racing explicit cancels: the first one wins, the error never changes after.
FIBER_TEST(ContextWait, DeadlineRacesCancel) {
  constexpr int kRounds = 2000;
  int by_deadline = 0, by_cancel = 0;
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_timeout(background(), std::chrono::microseconds(i % 20));
    ErrGroup g;
    g.go([&r] { r.cancel(); });
    const std::error_code ec = wait_done(r.ctx);
    (void)g.wait();
    EXPECT_EQ(r.ctx.err(), ec);
    EXPECT_EQ(cause(r.ctx), ec);
    if (ec == deadline_exceeded()) ++by_deadline;
    if (ec == canceled()) ++by_cancel;
  }
  EXPECT_EQ(by_deadline + by_cancel, kRounds);
}

// Plain threads can wait on contexts too (park blocks the thread on a futex).
FIBER_TEST(ContextWait, PlainThreadWaiter) {
  auto [ctx, cancel] = with_cancel(background());
  std::error_code got;
  std::thread t([&, ctx = ctx] { got = wait_done(ctx); });
  ASSERT_TRUE(eventually([&] { return detail::context_waiter_count(ctx) == 1; }));
  cancel();
  t.join();
  EXPECT_EQ(got, canceled());
}

// Outside any runtime there is no timer: deadlines are noticed lazily by err() and by waits.
TEST(ContextNoRuntime, LazyDeadline) {
  auto [ctx, cancel] = with_timeout(background(), 20ms);
  EXPECT_FALSE(ctx.err());
  EXPECT_EQ(detail::context_deadline(ctx), *ctx.deadline());  // the wait must watch it
  EXPECT_EQ(this_fiber::sleep_for(ctx, 1h), deadline_exceeded());
  // Not "20 ms since a start taken here": the deadline was fixed before, at with_timeout.
  EXPECT_GE(Clock::now(), *ctx.deadline());
  EXPECT_EQ(ctx.err(), deadline_exceeded());
  EXPECT_EQ(cause(ctx), deadline_exceeded());

  auto [ctx2, cancel2] = with_timeout_cause(background(), 1ms, make_error_code(std::errc::io_error));
  auto child = with_cancel(ctx2);
  std::this_thread::sleep_for(2ms);  // the lazy check needs the time to pass, not a wake-up
  EXPECT_EQ(child.ctx.err(), deadline_exceeded());
  EXPECT_EQ(cause(child.ctx), make_error_code(std::errc::io_error));

  // Cancel and its propagation need no runtime.
  auto [a, cancel_a] = with_cancel(background());
  auto b = with_cancel(a);
  cancel_a();
  EXPECT_EQ(b.ctx.err(), canceled());
}

// A context created with a runtime and used after it: its timer is not carried over.
TEST(ContextNoRuntime, InsideThenOutside) {
  Context kept, short_lived;
  CancelFunc keep_cancel, short_cancel;
  spindle::run(Options{.workers = 2}, [&] {
    auto r = with_timeout(background(), 1h);
    kept = r.ctx;
    keep_cancel = std::move(r.cancel);
    EXPECT_EQ(detail::context_deadline(kept), kNoDeadline);  // the timer does the work
    auto s = with_timeout(background(), 5ms);
    short_lived = s.ctx;
    short_cancel = std::move(s.cancel);
  });
  EXPECT_FALSE(kept.err());
  // Its timer died with the run: the wait watches the deadline itself.
  EXPECT_EQ(this_fiber::sleep_for(short_lived, 1h), deadline_exceeded());
  keep_cancel();
  EXPECT_EQ(kept.err(), canceled());
  kept = Context{};
  keep_cancel = CancelFunc{};  // the node dies outside the run: must not touch the old heap
}

}  // namespace
}  // namespace spindle
