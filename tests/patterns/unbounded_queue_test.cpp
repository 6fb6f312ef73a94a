// UnboundedQueue / unbounded_chan: FIFO, push never blocks, memory grows with a burst and
// shrinks back after it (the seed's slice never did), close semantics, ctx-aware pop, and an
// exact multi-producer multi-consumer count.
#include <atomic>
#include <numeric>
#include <vector>

#include <spindle/patterns/unbounded_queue.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(UnboundedQueue, FifoAndShrinksAfterABurst) {
  UnboundedQueue<int> q(16);
  EXPECT_EQ(q.capacity(), 16u);
  for (int i = 0; i < 100'000; ++i) ASSERT_TRUE(q.push(i));
  EXPECT_EQ(q.size(), 100'000u);
  EXPECT_GE(q.capacity(), 100'000u);
  EXPECT_LE(q.capacity(), 2 * 100'000u);
  for (int i = 0; i < 99'990; ++i) ASSERT_EQ(*q.try_pop(), i);
  EXPECT_LE(q.capacity(), 64u);  // follows the backlog down
  for (int i = 99'990; i < 100'000; ++i) ASSERT_EQ(*q.pop(), i);
  EXPECT_EQ(q.capacity(), 16u);  // never below the minimum
  EXPECT_EQ(q.peak(), 100'000u);
  EXPECT_FALSE(q.try_pop().has_value());
}

FIBER_TEST(UnboundedQueue, NoResizeThrashAroundABoundary) {
  UnboundedQueue<int> q(4);
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(q.push(i));
  EXPECT_EQ(q.capacity(), 64u);  // exactly full
  ASSERT_TRUE(q.push(64));       // grows once...
  EXPECT_EQ(q.capacity(), 128u);
  for (int round = 0; round < 1000; ++round) {  // ...then hovering at 64-65 never resizes
    (void)q.try_pop();
    ASSERT_TRUE(q.push(round));
    ASSERT_EQ(q.capacity(), 128u);
  }
  while (q.size() > 32) (void)q.try_pop();  // a quarter full: halves, to half full
  EXPECT_EQ(q.capacity(), 64u);
  for (int round = 0; round < 1000; ++round) {  // hovering at 31-32 never resizes again
    (void)q.try_pop();
    ASSERT_TRUE(q.push(round));
    ASSERT_EQ(q.capacity(), 64u);
  }
}

FIBER_TEST(UnboundedQueue, CloseAndContext) {
  UnboundedQueue<std::string> q;
  ASSERT_TRUE(q.push("a"));
  q.close();
  q.close();  // idempotent
  std::string b = "b";
  EXPECT_FALSE(q.push(b));
  EXPECT_EQ(b, "b");  // not consumed, not dropped silently
  EXPECT_EQ(*q.pop(), "a");  // pushed before close: still delivered
  EXPECT_FALSE(q.pop().has_value());
  EXPECT_EQ(q.pop(background()).error(), errc::closed);

  UnboundedQueue<int> q2;
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg;
  std::error_code got;
  wg.go([&, ctx = ctx] { got = q2.pop(ctx).error(); });
  cancel();
  wg.wait();
  EXPECT_EQ(got, spindle::errc::canceled);
  ASSERT_TRUE(q2.push(3));
  EXPECT_EQ(*q2.pop(background()), 3);
}

FIBER_TEST(UnboundedQueue, ManyProducersManyConsumersExactly) {
  UnboundedQueue<int> q;
  constexpr int kProducers = 8, kPer = 2000, kConsumers = 4;
  std::vector<std::atomic<int>> seen(kProducers * kPer);
  std::atomic<int> got{0};
  WaitGroup producers, consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.go([&] {
      while (auto v = q.pop()) {
        ++seen[static_cast<std::size_t>(*v)];
        ++got;
      }
    });
  }
  for (int p = 0; p < kProducers; ++p) {
    producers.go([&, p] {
      for (int i = 0; i < kPer; ++i) ASSERT_TRUE(q.push(p * kPer + i));
    });
  }
  producers.wait();
  q.close();
  consumers.wait();
  EXPECT_EQ(got.load(), kProducers * kPer);
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

FIBER_TEST(UnboundedChan, BuffersWithoutBlockingTheSender) {
  auto [in, out] = unbounded_chan<int>(background());
  for (int i = 0; i < 10'000; ++i) in.send(i);  // no reader yet: never blocks for long
  in.close();
  int next = 0;
  for (int v : out) ASSERT_EQ(v, next++);
  EXPECT_EQ(next, 10'000);
}

FIBER_TEST(UnboundedChan, CancelClosesTheOutput) {
  auto [ctx, cancel] = with_cancel(background());
  auto [in, out] = unbounded_chan<int>(ctx);
  in.send(1);
  in.send(2);
  EXPECT_EQ(*out.recv(), 1);
  cancel();
  for (int v : out) (void)v;  // closed (2 may or may not come first)
  (void)in;
}

}  // namespace
}  // namespace spindle::patterns
