// Context basics: roots, cancel propagation in both orders, deadlines, values, without_cancel,
// stop_token, and the unregistration of finished children (Go's context_test.go shapes).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/errgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::deadline_exceeded;
using spindle::testing::wait_done;

namespace spindle {
namespace {

constexpr ContextKey<std::string> kName{"name"};
constexpr ContextKey<std::string> kOther{"other"};
constexpr ContextKey<int> kNumber{"number"};

FIBER_TEST(Context, BackgroundAndTodo) {
  for (const Context& ctx : {background(), todo(), Context{}}) {
    EXPECT_FALSE(ctx.err());
    EXPECT_FALSE(cause(ctx));
    EXPECT_FALSE(ctx.deadline().has_value());
    EXPECT_EQ(ctx.value(kName), nullptr);
    EXPECT_FALSE(ctx.stop_token().stop_possible());
    EXPECT_EQ(detail::context_child_count(ctx), 0u);
  }
  EXPECT_EQ(background(), Context{});
  EXPECT_FALSE(background() == todo());
}

FIBER_TEST(Context, ErrorCodes) {
  const std::error_code c = canceled(), d = deadline_exceeded();
  EXPECT_EQ(c.message(), "context canceled");
  EXPECT_EQ(d.message(), "context deadline exceeded");
  EXPECT_STREQ(c.category().name(), "spindle");
  EXPECT_TRUE(d == std::errc::timed_out);  // Go: DeadlineExceeded.Timeout() == true
  EXPECT_FALSE(c == std::errc::timed_out);
  EXPECT_TRUE(c == std::errc::operation_canceled);
  EXPECT_TRUE(c == errc::canceled);
  EXPECT_TRUE(d == errc::deadline_exceeded);
}

FIBER_TEST(Context, WithCancel) {
  auto [ctx, cancel] = with_cancel(background());
  EXPECT_FALSE(ctx.err());
  EXPECT_EQ(detail::context_child_count(ctx), 0u);
  cancel();
  EXPECT_EQ(ctx.err(), canceled());
  EXPECT_EQ(cause(ctx), canceled());
  cancel.cancel(make_error_code(std::errc::io_error));  // idempotent: first cancellation wins
  cancel();
  EXPECT_EQ(ctx.err(), canceled());
  EXPECT_EQ(cause(ctx), canceled());
  EXPECT_EQ(wait_done(ctx), canceled());
}

FIBER_TEST(Context, CancelFuncIsRaii) {
  Context ctx;
  {
    auto r = with_cancel(background());
    ctx = r.ctx;
    EXPECT_FALSE(ctx.err());
  }
  EXPECT_EQ(ctx.err(), canceled());

  auto a = with_cancel(background());
  auto b = with_cancel(background());
  a.cancel = std::move(b.cancel);  // assigning over a CancelFunc cancels what it held
  EXPECT_EQ(a.ctx.err(), canceled());
  EXPECT_FALSE(b.ctx.err());
  b.cancel();  // moved-from: no effect
  EXPECT_FALSE(b.ctx.err());
  a.cancel();  // now cancels b's context
  EXPECT_EQ(b.ctx.err(), canceled());
}

FIBER_TEST(Context, ParentBeforeChild) {
  auto root = with_cancel_cause(background());
  auto mid = with_cancel(root.ctx);
  const Context val = with_value(mid.ctx, kNumber, 7);
  auto leaf = with_cancel(val);
  auto leaf2 = with_timeout(val, 1h);
  EXPECT_EQ(detail::context_child_count(root.ctx), 1u);
  EXPECT_EQ(detail::context_child_count(mid.ctx), 2u);  // through the value node
  EXPECT_EQ(detail::context_child_count(val), 2u);      // the value node's governing is mid

  root.cancel.cancel(make_error_code(std::errc::connection_reset));
  for (const Context* c : std::initializer_list<const Context*>{&root.ctx, &mid.ctx, &val, &leaf.ctx, &leaf2.ctx}) {
    EXPECT_EQ(c->err(), canceled());
    EXPECT_EQ(cause(*c), make_error_code(std::errc::connection_reset));
  }
  EXPECT_EQ(detail::context_child_count(root.ctx), 0u);
  EXPECT_EQ(detail::context_child_count(mid.ctx), 0u);
}

FIBER_TEST(Context, ChildBeforeParent) {
  auto parent = with_cancel_cause(background());
  auto child = with_cancel_cause(parent.ctx);
  auto sibling = with_cancel(parent.ctx);
  EXPECT_EQ(detail::context_child_count(parent.ctx), 2u);

  child.cancel.cancel(make_error_code(std::errc::io_error));
  EXPECT_EQ(child.ctx.err(), canceled());
  EXPECT_FALSE(parent.ctx.err());
  EXPECT_FALSE(sibling.ctx.err());
  EXPECT_EQ(detail::context_child_count(parent.ctx), 1u);  // the cancelled child unregistered

  parent.cancel.cancel(make_error_code(std::errc::broken_pipe));
  EXPECT_EQ(cause(child.ctx), make_error_code(std::errc::io_error));  // its own came first
  EXPECT_EQ(cause(sibling.ctx), make_error_code(std::errc::broken_pipe));
}

FIBER_TEST(Context, ChildOfDoneParentIsDoneAtOnce) {
  auto parent = with_cancel_cause(background());
  parent.cancel.cancel(make_error_code(std::errc::io_error));
  auto child = with_cancel(parent.ctx);
  auto timed = with_timeout(parent.ctx, 1h);
  EXPECT_EQ(child.ctx.err(), canceled());
  EXPECT_EQ(cause(child.ctx), make_error_code(std::errc::io_error));
  EXPECT_EQ(timed.ctx.err(), canceled());
  EXPECT_EQ(detail::context_child_count(parent.ctx), 0u);
}

FIBER_TEST(Context, Deadline) {
  const TimePoint d = Clock::now() + 1h;
  auto a = with_deadline(background(), d);
  ASSERT_TRUE(a.ctx.deadline().has_value());
  EXPECT_EQ(*a.ctx.deadline(), d);
  EXPECT_FALSE(a.ctx.err());

  // A later deadline under an earlier one is the parent's (Go: semantically the parent).
  auto later = with_deadline(a.ctx, d + 1h);
  EXPECT_EQ(*later.ctx.deadline(), d);
  auto earlier = with_deadline(a.ctx, d - 30min);
  EXPECT_EQ(*earlier.ctx.deadline(), d - 30min);
  auto plain = with_cancel(earlier.ctx);
  EXPECT_EQ(*plain.ctx.deadline(), d - 30min);
  EXPECT_EQ(*with_value(plain.ctx, kNumber, 1).deadline(), d - 30min);

  // In the past, or now: done at once.
  auto past = with_deadline(background(), Clock::now() - 1s);
  EXPECT_EQ(past.ctx.err(), deadline_exceeded());
  auto zero = with_timeout(background(), 0s);
  EXPECT_EQ(zero.ctx.err(), deadline_exceeded());
  EXPECT_EQ(cause(zero.ctx), deadline_exceeded());
}

FIBER_TEST(Context, TimeoutFires) {
  const TimePoint start = Clock::now();
  auto t = with_timeout(background(), 5ms);
  auto child = with_cancel(t.ctx);
  EXPECT_EQ(wait_done(child.ctx), deadline_exceeded());
  EXPECT_GE(Clock::now() - start, 5ms);
  EXPECT_EQ(t.ctx.err(), deadline_exceeded());
  EXPECT_EQ(child.ctx.err(), deadline_exceeded());
  EXPECT_TRUE(t.ctx.err() == std::errc::timed_out);
  EXPECT_EQ(detail::context_child_count(t.ctx), 0u);
}

FIBER_TEST(Context, Values) {
  const Context c1 = with_value(background(), kName, std::string("outer"));
  auto [c2, cancel] = with_cancel(c1);
  const Context c3 = with_value(c2, kOther, "other");
  const Context c4 = with_value(c3, kName, "inner");
  const Context c5 = with_value(c4, kNumber, 42);

  ASSERT_NE(c1.value(kName), nullptr);
  EXPECT_EQ(*c1.value(kName), "outer");
  EXPECT_EQ(*c2.value(kName), "outer");
  EXPECT_EQ(*c3.value(kName), "outer");
  EXPECT_EQ(*c4.value(kName), "inner");  // nearest binding wins
  EXPECT_EQ(*c5.value(kName), "inner");
  EXPECT_EQ(*c5.value(kOther), "other");
  EXPECT_EQ(*c5.value(kNumber), 42);
  EXPECT_EQ(c3.value(kNumber), nullptr);
  EXPECT_EQ(c1.value(kOther), nullptr);

  // A key of the same type but another object is another key.
  constexpr ContextKey<std::string> kLookalike{"name"};
  EXPECT_EQ(c5.value(kLookalike), nullptr);

  // Values survive cancellation and without_cancel.
  cancel();
  EXPECT_EQ(*c5.value(kName), "inner");
  EXPECT_EQ(*without_cancel(c5).value(kNumber), 42);
}

FIBER_TEST(Context, ValueLifetime) {
  struct Counted {
    explicit Counted(std::atomic<int>& n) : live(&n) { ++*live; }
    Counted(const Counted& o) : live(o.live) { ++*live; }
    ~Counted() { --*live; }
    std::atomic<int>* live;
  };
  static constexpr ContextKey<Counted> kCounted{"counted"};
  std::atomic<int> live{0};
  const std::int64_t nodes = detail::live_context_nodes();
  {
    Context c = with_value(background(), kCounted, Counted(live));
    EXPECT_EQ(live.load(), 1);
    auto [child, cancel] = with_cancel(c);
    c = Context{};
    EXPECT_EQ(live.load(), 1);  // the child keeps the value node alive
    EXPECT_EQ(child.value(kCounted)->live, &live);
  }
  EXPECT_EQ(live.load(), 0);
  EXPECT_EQ(detail::live_context_nodes(), nodes);
}

FIBER_TEST(Context, WithoutCancel) {
  auto [parent, cancel] = with_timeout(with_value(background(), kNumber, 5), 1h);
  const Context detached = without_cancel(parent);
  EXPECT_EQ(detail::context_child_count(parent), 0u);  // not registered anywhere
  cancel();
  EXPECT_EQ(parent.err(), canceled());
  EXPECT_FALSE(detached.err());
  EXPECT_FALSE(cause(detached));
  EXPECT_FALSE(detached.deadline().has_value());
  EXPECT_FALSE(detached.stop_token().stop_possible());
  EXPECT_EQ(*detached.value(kNumber), 5);

  // Its children are cancelable on their own.
  auto child = with_cancel(detached);
  EXPECT_FALSE(child.ctx.err());
  child.cancel();
  EXPECT_EQ(child.ctx.err(), canceled());
}

FIBER_TEST(Context, StopToken) {
  auto [ctx, cancel] = with_cancel(background());
  std::stop_token tok = ctx.stop_token();
  EXPECT_TRUE(tok.stop_possible());
  EXPECT_FALSE(tok.stop_requested());
  std::atomic<int> calls{0};
  std::stop_callback cb(tok, [&] {
    // Runs with no context lock held: it may use the context tree freely, including the timer
    // heap (a new timeout) and the context that is being cancelled.
    EXPECT_EQ(ctx.err(), canceled());
    auto t = with_timeout(ctx, 1h);
    EXPECT_EQ(t.ctx.err(), canceled());
    auto other = with_timeout(background(), 1h);
    other.cancel();
    ++calls;
  });
  auto child = with_cancel(ctx);
  std::stop_token child_tok = child.ctx.stop_token();
  cancel();
  EXPECT_TRUE(tok.stop_requested());
  EXPECT_TRUE(child_tok.stop_requested());  // synchronously, with the cancel
  EXPECT_EQ(calls.load(), 1);
  // A token taken after the context is done is requested already.
  EXPECT_TRUE(ctx.stop_token().stop_requested());
  auto done_before = with_cancel(background());
  done_before.cancel();
  EXPECT_TRUE(done_before.ctx.stop_token().stop_requested());
  // From a value node: the governing node's token.
  auto [c2, cancel2] = with_cancel(background());
  std::stop_token vt = with_value(c2, kNumber, 1).stop_token();
  cancel2();
  EXPECT_TRUE(vt.stop_requested());
}

FIBER_TEST(Context, StopTokenOnDeadline) {
  auto [ctx, cancel] = with_timeout(background(), 2ms);
  std::stop_token tok = ctx.stop_token();
  EXPECT_EQ(wait_done(ctx), deadline_exceeded());
  // The deadline's fiber requested it before it woke us (it cancels, then wakes).
  EXPECT_TRUE(tok.stop_requested());
}

// Long-lived parents must not accumulate children (Go's TestCancelRemoves, at scale).
FIBER_TEST(Context, CancelledChildrenUnregister) {
  constexpr int kN = 100000;
  auto root = with_cancel(background());
  const std::int64_t nodes = detail::live_context_nodes();
  {
    std::vector<CancelableContext> kids;
    kids.reserve(kN);
    for (int i = 0; i < kN; ++i) kids.push_back(with_cancel(root.ctx));
    EXPECT_EQ(detail::context_child_count(root.ctx), static_cast<std::size_t>(kN));
    for (int i = 0; i < kN; i += 2) kids[i].cancel();  // explicit cancel
    EXPECT_EQ(detail::context_child_count(root.ctx), static_cast<std::size_t>(kN / 2));
  }  // RAII cancel for the rest
  EXPECT_EQ(detail::context_child_count(root.ctx), 0u);
  EXPECT_EQ(detail::live_context_nodes(), nodes);

  // Deadline children and value-wrapped children too, and their timers go away with them.
  for (int i = 0; i < kN; ++i) {
    auto t = with_timeout(with_value(root.ctx, kNumber, i), 1h);
    auto c = with_cancel(with_value(root.ctx, kNumber, i));
    EXPECT_EQ(detail::context_child_count(root.ctx), 2u);
  }
  EXPECT_EQ(detail::context_child_count(root.ctx), 0u);
  EXPECT_EQ(detail::live_context_nodes(), nodes);
  EXPECT_FALSE(root.ctx.err());
}

// Nodes held by nothing are freed, however the tree was cancelled (no reference cycles).
FIBER_TEST(Context, NoLeakedNodes) {
  const std::int64_t nodes = detail::live_context_nodes();
  {
    auto root = with_cancel(background());
    std::vector<CancelableContext> kids;
    for (int i = 0; i < 100; ++i) {
      kids.push_back(with_timeout(with_value(root.ctx, kNumber, i), 1h));
      kids.push_back(with_cancel(kids.back().ctx));
    }
    (void)after_func(kids[5].ctx, [] {});
    root.cancel();
  }
  EXPECT_TRUE(testing::eventually([&] { return detail::live_context_nodes() == nodes; }));
}

// Deadlines expire through their own fibers; a cancelled deadline context leaves no timer.
FIBER_TEST(Context, ManyDeadlines) {
  constexpr int kN = 2000;
  std::vector<CancelableContext> ctxs;
  for (int i = 0; i < kN; ++i) ctxs.push_back(with_timeout(background(), std::chrono::microseconds(i)));
  int exceeded = 0;
  for (auto& c : ctxs) exceeded += wait_done(c.ctx) == deadline_exceeded();
  EXPECT_EQ(exceeded, kN);
}

}  // namespace
}  // namespace spindle
