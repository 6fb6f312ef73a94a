// ErrGroup: golang.org/x/sync/errgroup's tests translated (zero group, first error wins, the
// derived context, SetLimit, TryGo), plus spindle's exception capture.
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>

#include <spindle/errgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::eventually;
using spindle::testing::wait_done;

namespace spindle {
namespace {

const std::error_code kErr1 = make_error_code(std::errc::io_error);
const std::error_code kErr2 = make_error_code(std::errc::broken_pipe);

FIBER_TEST(ErrGroup, ZeroGroup) {
  ErrGroup g;
  EXPECT_FALSE(g.wait());  // nothing started
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) g.go([&] { ++ran; });
  for (int i = 0; i < 100; ++i) g.go([&]() -> std::error_code { ++ran; return {}; });
  EXPECT_FALSE(g.wait());
  EXPECT_EQ(ran.load(), 200);
  // Reusable once wait has returned.
  g.go([] { return kErr1; });
  EXPECT_EQ(g.wait(), kErr1);
  EXPECT_EQ(g.wait(), kErr1);
}

FIBER_TEST(ErrGroup, FirstErrorWins) {
  for (int round = 0; round < 50; ++round) {
    auto [g, ctx] = ErrGroup::with_context(background());
    // Only the first function fails on its own; the rest fail after seeing the cancellation,
    // so their (later) errors must be dropped.
    g.go([] { return kErr1; });
    for (int i = 0; i < 10; ++i) {
      g.go([ctx = ctx]() -> std::error_code {
        (void)wait_done(ctx);
        return kErr2;
      });
    }
    EXPECT_EQ(g.wait(), kErr1);
    EXPECT_EQ(ctx.err(), canceled());
    EXPECT_EQ(cause(ctx), kErr1);
  }
}

FIBER_TEST(ErrGroup, ContextCancelledOnWait) {
  auto [g, ctx] = ErrGroup::with_context(background());
  g.go([] {});
  g.go([] { return std::error_code{}; });
  EXPECT_FALSE(g.wait());
  EXPECT_EQ(ctx.err(), canceled());  // wait() cancels even without an error
  EXPECT_EQ(cause(ctx), canceled());
}

FIBER_TEST(ErrGroup, ContextCancelledOnFirstErrorBeforeWait) {
  auto [g, ctx] = ErrGroup::with_context(background());
  std::atomic<bool> saw_cancel{false};
  g.go([ctx = ctx, &saw_cancel] {
    saw_cancel = wait_done(ctx) == canceled();  // blocks until the other function fails
  });
  g.go([] { return kErr1; });
  EXPECT_EQ(wait_done(ctx), canceled());  // before wait(): the error did it
  EXPECT_EQ(cause(ctx), kErr1);
  EXPECT_EQ(g.wait(), kErr1);
  EXPECT_TRUE(saw_cancel.load());
}

FIBER_TEST(ErrGroup, ParentCancelReachesGroupContext) {
  auto [parent, cancel] = with_cancel(background());
  auto [g, ctx] = ErrGroup::with_context(parent);
  g.go([ctx = ctx] { return wait_done(ctx); });
  cancel();
  EXPECT_EQ(g.wait(), canceled());
}

FIBER_TEST(ErrGroup, LimitBlocks) {
  constexpr int kLimit = 3, kN = 200;
  ErrGroup g;
  g.set_limit(kLimit);
  std::atomic<int> active{0}, max_active{0}, ran{0};
  for (int i = 0; i < kN; ++i) {
    g.go([&] {
      const int now = ++active;
      int seen = max_active.load();
      while (now > seen && !max_active.compare_exchange_weak(seen, now)) {
      }
      for (int y = 0; y < 3; ++y) this_fiber::yield();
      --active;
      ++ran;
    });
  }
  EXPECT_FALSE(g.wait());
  EXPECT_EQ(ran.load(), kN);
  EXPECT_LE(max_active.load(), kLimit);
  EXPECT_GE(max_active.load(), 1);
}

FIBER_TEST(ErrGroup, GoBlocksAtLimitUntilASlotFrees) {
  auto [gate, open] = with_cancel(background());
  ErrGroup g;
  g.set_limit(1);
  g.go([gate = gate] { (void)wait_done(gate); });
  std::atomic<bool> second_started{false};
  ErrGroup outer;
  outer.go([&] { g.go([&] { second_started = true; }); });  // blocks in go()
  EXPECT_TRUE(eventually([&] { return testing::other_live_fibers() == 2; }));
  EXPECT_FALSE(second_started.load());
  open();
  EXPECT_FALSE(outer.wait());
  EXPECT_FALSE(g.wait());
  EXPECT_TRUE(second_started.load());
}

FIBER_TEST(ErrGroup, TryGo) {
  auto [gate, open] = with_cancel(background());
  ErrGroup g;
  g.set_limit(2);
  std::atomic<int> ran{0};
  EXPECT_TRUE(g.try_go([&, gate = gate] { (void)wait_done(gate); ++ran; }));
  EXPECT_TRUE(g.try_go([&, gate = gate] { (void)wait_done(gate); ++ran; }));
  EXPECT_FALSE(g.try_go([&] { ++ran; }));  // at the limit
  open();
  EXPECT_FALSE(g.wait());
  EXPECT_EQ(ran.load(), 2);
  EXPECT_TRUE(g.try_go([&] { ++ran; }));  // free again
  EXPECT_FALSE(g.wait());
  EXPECT_EQ(ran.load(), 3);

  ErrGroup zero;
  zero.set_limit(0);
  EXPECT_FALSE(zero.try_go([] {}));
  zero.set_limit(-1);
  EXPECT_TRUE(zero.try_go([] {}));
  EXPECT_FALSE(zero.wait());
}

FIBER_TEST(ErrGroup, SetLimitWhileActiveThrows) {
  auto [gate, open] = with_cancel(background());
  ErrGroup g;
  g.set_limit(4);
  g.go([gate = gate] { (void)wait_done(gate); });
  g.go([gate = gate] { (void)wait_done(gate); });
  try {
    g.set_limit(8);
    ADD_FAILURE() << "set_limit did not throw";
  } catch (const SyncError& e) {
    EXPECT_STREQ(e.what(), "errgroup: modify limit while 2 goroutines in the group are still active");
  }
  g.set_limit(-1);  // as in Go: removing the limit is always allowed
  open();
  EXPECT_FALSE(g.wait());
  g.set_limit(1);  // nothing active any more
  EXPECT_FALSE(g.wait());
}

FIBER_TEST(ErrGroup, ExceptionIsCapturedAndRethrown) {
  auto [g, ctx] = ErrGroup::with_context(background());
  g.go([]() -> std::error_code { throw std::runtime_error("boom"); });
  g.go([ctx = ctx] { return wait_done(ctx); });  // cancelled by the exception
  try {
    (void)g.wait();
    ADD_FAILURE() << "wait did not rethrow";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_EQ(ctx.err(), canceled());
  EXPECT_EQ(cause(ctx), make_error_code(errc::exception));
  EXPECT_THROW((void)g.wait(), std::runtime_error);  // every wait reports the first failure
}

FIBER_TEST(ErrGroup, FirstFailureDecidesBetweenCodeAndException) {
  {
    auto [g, ctx] = ErrGroup::with_context(background());
    g.go([] { return kErr1; });
    g.go([ctx = ctx] {
      (void)wait_done(ctx);
      throw std::logic_error("late");  // after the error: dropped, as later errors are
    });
    EXPECT_EQ(g.wait(), kErr1);
  }
  {
    auto [g, ctx] = ErrGroup::with_context(background());
    g.go([] { throw std::logic_error("first"); });
    g.go([ctx = ctx] {
      (void)wait_done(ctx);
      return kErr2;
    });
    EXPECT_THROW((void)g.wait(), std::logic_error);
  }
}

// Many fibers failing at once: exactly one error is reported and it is one of theirs; the
// group's context is cancelled exactly once with it as cause.
FIBER_TEST(ErrGroup, ManyConcurrentFailures) {
  for (int round = 0; round < 200; ++round) {
    auto [g, ctx] = ErrGroup::with_context(background());
    std::atomic<int> ran{0};
    for (int i = 0; i < 20; ++i) {
      g.go([&, i]() -> std::error_code {
        ++ran;
        if (i % 3 == 0) throw std::runtime_error("x");
        return i % 2 == 0 ? kErr1 : kErr2;
      });
    }
    std::error_code got;
    bool threw = false;
    try {
      got = g.wait();
    } catch (const std::runtime_error&) {
      threw = true;
    }
    EXPECT_EQ(ran.load(), 20);
    if (threw) {
      EXPECT_EQ(cause(ctx), make_error_code(errc::exception));
    } else {
      EXPECT_TRUE(got == kErr1 || got == kErr2);
      EXPECT_EQ(cause(ctx), got);
    }
  }
}

// wait() from a plain thread while the runtime runs.
FIBER_TEST(ErrGroup, WaitFromPlainThread) {
  ErrGroup g;
  std::atomic<int> ran{0};
  for (int i = 0; i < 50; ++i) g.go([&] { ++ran; this_fiber::yield(); });
  std::error_code got = kErr1;
  std::atomic<bool> finished{false};
  std::thread t([&] {
    got = g.wait();
    finished = true;
  });
  // Joining would block this worker (the only one, at 1 worker) and with it the group.
  ASSERT_TRUE(eventually([&] { return finished.load(); }));
  t.join();
  EXPECT_FALSE(got);
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace spindle
