// ctx.done(): Go's Done channel. Nil for never-cancelable contexts, closed on cancel and on the
// deadline, usable in select, and the same channel for a context and its value children.
#include <atomic>
#include <optional>
#include <variant>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::deadline_exceeded;
using spindle::testing::eventually;

namespace spindle {
namespace {

constexpr ContextKey<int> kKey{"k"};

FIBER_TEST(ContextDone, NeverCancelableIsNil) {
  EXPECT_TRUE(background().done().is_nil());
  EXPECT_TRUE(todo().done().is_nil());
  auto [ctx, cancel] = with_cancel(background());
  EXPECT_TRUE(without_cancel(ctx).done().is_nil());
  EXPECT_TRUE(with_value(background(), kKey, 1).done().is_nil());
  EXPECT_EQ(background().done().try_recv().status, ChanStatus::would_block);
  // A nil done() case is never chosen.
  const int chosen = select(case_recv(background().done()), case_timeout(1ms));
  EXPECT_EQ(chosen, 1);
}

FIBER_TEST(ContextDone, ClosedOnCancel) {
  auto [ctx, cancel] = with_cancel(background());
  Receiver<std::monostate> d = ctx.done();
  EXPECT_FALSE(d.is_nil());
  EXPECT_TRUE(d == ctx.done());                          // the same channel every time
  EXPECT_TRUE(d == with_value(ctx, kKey, 1).done());      // value children share it
  EXPECT_EQ(d.try_recv().status, ChanStatus::would_block);
  cancel();
  EXPECT_EQ(d.try_recv().status, ChanStatus::closed);
  EXPECT_FALSE(d.recv().has_value());
  // err() is set before the close is observable (Go's memory model for Done/Err).
  EXPECT_EQ(ctx.err(), canceled());
  // done() after the cancel: closed already.
  auto [ctx2, cancel2] = with_cancel(background());
  cancel2();
  EXPECT_EQ(ctx2.done().try_recv().status, ChanStatus::closed);
}

FIBER_TEST(ContextDone, ClosedOnDeadlineAndByParent) {
  auto [t, cancel_t] = with_timeout(background(), 2ms);
  auto [child, cancel_child] = with_cancel(t);
  EXPECT_FALSE(child.done().recv().has_value());  // blocks until the deadline closes it
  EXPECT_EQ(child.err(), deadline_exceeded());
  EXPECT_EQ(t.done().try_recv().status, ChanStatus::closed);
}

FIBER_TEST(ContextDone, InSelect) {
  auto [ctx, cancel] = with_cancel(background());
  Chan<int> work(0);
  WaitGroup wg;
  std::atomic<int> got{0};
  std::error_code exit_err;
  wg.go([&, ctx = ctx] {
    for (;;) {
      bool stop = false;
      select(case_recv(work, [&](std::optional<int> v) { got += v.value_or(0); }),
             case_recv(ctx.done(), [&] {
               exit_err = ctx.err();
               stop = true;
             }));
      if (stop) return;
    }
  });
  for (int i = 1; i <= 100; ++i) work.send(i);
  cancel();
  wg.wait();
  EXPECT_EQ(got.load(), 5050);
  EXPECT_EQ(exit_err, canceled());
}

// done() racing cancel: whichever comes first, every done() channel ends up closed, once.
FIBER_TEST(ContextDone, DoneRacesCancel) {
  constexpr int kRounds = 3000;
  int closed = 0;
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_cancel(background());
    WaitGroup wg;
    wg.go([&r] { r.cancel(); });
    Receiver<std::monostate> d = r.ctx.done();
    closed += d.recv().has_value() ? 0 : 1;  // blocks until the cancel closes it
    wg.wait();
    EXPECT_TRUE(d == r.ctx.done());
  }
  EXPECT_EQ(closed, kRounds);
}

// 100,000 contexts, each watched through its done() channel (the benchmark's workload).
FIBER_TEST_AT(ContextDone, HundredThousandDoneWatchers, 1, 4) {
  constexpr int kN = testing::kManyFibers;
  auto root = with_cancel(background());
  std::vector<CancelableContext> kids;
  kids.reserve(kN);
  for (int i = 0; i < kN; ++i) kids.push_back(with_cancel(root.ctx));
  std::atomic<int> started{0}, woke{0};
  WaitGroup wg;
  for (int i = 0; i < kN; ++i) {
    if (i % 1024 == 0) this_fiber::yield();  // a long spawn loop: let others run
    wg.go([&, ctx = kids[i].ctx] {
      ++started;
      if (!ctx.done().recv().has_value() && ctx.err() == canceled()) ++woke;
    });
  }
  ASSERT_TRUE(eventually([&] { return started.load() == kN; }, 60s));
  root.cancel();
  wg.wait();
  EXPECT_EQ(woke.load(), kN);
  EXPECT_EQ(detail::context_child_count(root.ctx), 0u);
}

}  // namespace
}  // namespace spindle
