// Channel combinators: each forwards every value exactly once and in order, closes its outputs
// when the input is exhausted, and stops (closing outputs, ending its fibers) when ctx is done,
// even with a consumer that went away. The fixture's leak check proves no fiber is left.
#include <algorithm>
#include <array>
#include <atomic>
#include <numeric>
#include <optional>
#include <set>
#include <vector>

#include <spindle/patterns/combinators.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

template <class T>
std::vector<T> drain(const Receiver<T>& r) {
  std::vector<T> out;
  for (T v : r) out.push_back(std::move(v));
  return out;
}

std::vector<int> iota(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

FIBER_TEST(Combinators, GeneratorTakeAndFromValues) {
  auto [ctx, cancel] = with_cancel(background());
  auto nums = generator(ctx, [i = 0]() mutable -> std::optional<int> { return i++; });
  EXPECT_EQ(drain(take(ctx, nums, 5)), (std::vector<int>{0, 1, 2, 3, 4}));
  // take reads no more than it forwards: the generator continues where take stopped.
  EXPECT_EQ(*nums.recv(), 5);
  EXPECT_EQ(drain(take(background(), from_values(background(), iota(3)), 10)), iota(3));
  // take(0) reads nothing: the generator behind it waits to send until its context is done.
  EXPECT_TRUE(drain(take(background(), from_values(ctx, iota(3)), 0)).empty());
  // The infinite generator ends when its context is cancelled.
  cancel();
  for (int v : nums) (void)v;
}

FIBER_TEST(Combinators, OrDoneStopsOnCancelOrClose) {
  Chan<int> in(0);
  auto [ctx, cancel] = with_cancel(background());
  auto out = or_done(ctx, in);
  WaitGroup wg;
  wg.go([&] {
    for (int i = 0; i < 3; ++i) in.send(i);
  });
  EXPECT_EQ(*out.recv(), 0);
  EXPECT_EQ(*out.recv(), 1);
  EXPECT_EQ(*out.recv(), 2);
  wg.wait();
  cancel();  // the input never closes: the cancellation ends it
  EXPECT_FALSE(out.recv().has_value());
  auto [ctx2, cancel2] = with_cancel(background());
  Chan<int> in2(4);
  in2.send(7);
  in2.close();
  EXPECT_EQ(drain(or_done(ctx2, in2)), (std::vector<int>{7}));
}

FIBER_TEST(Combinators, TeeToThreeGivesEveryoneEverything) {
  auto src = from_values(background(), iota(500));
  auto outs = tee<3>(background(), src);
  std::array<std::vector<int>, 3> got;
  WaitGroup wg;
  for (std::size_t i = 0; i < 3; ++i) wg.go([&, i] { got[i] = drain(outs[i]); });
  wg.wait();
  for (auto& g : got) EXPECT_EQ(g, iota(500));
}

FIBER_TEST(Combinators, TeeStopsOnCancelWithAnAbsentConsumer) {
  auto [ctx, cancel] = with_cancel(background());
  auto src = generator(ctx, [i = 0]() mutable -> std::optional<int> { return i++; });
  auto outs = tee<2>(ctx, src);
  EXPECT_EQ(*outs[0].recv(), 0);  // outs[1] is never read: tee is stuck on it...
  cancel();                       // ...until the cancellation
  for (int v : outs[0]) (void)v;
  for (int v : outs[1]) (void)v;
}

FIBER_TEST(Combinators, BridgeFlattensInOrder) {
  Chan<Receiver<int>> streams(0);
  auto out = bridge(background(), Receiver<Receiver<int>>(streams));
  WaitGroup wg;
  wg.go([&] {
    for (int s = 0; s < 10; ++s) {
      std::vector<int> v;
      for (int k = 0; k < 10; ++k) v.push_back(s * 10 + k);
      streams.send(from_values(background(), std::move(v)));
    }
    streams.close();
  });
  EXPECT_EQ(drain(out), iota(100));
  wg.wait();
}

FIBER_TEST(Combinators, MergeKeepsPerInputOrderAndCountsExactly) {
  std::vector<Receiver<int>> ins;
  for (int s = 0; s < 8; ++s) {
    std::vector<int> v;
    for (int k = 0; k < 200; ++k) v.push_back(s * 1000 + k);
    ins.push_back(from_values(background(), std::move(v)));
  }
  std::vector<int> got = drain(merge(background(), std::move(ins), 4));
  ASSERT_EQ(got.size(), 1600u);
  std::array<int, 8> next{};
  for (int v : got) {
    const int s = v / 1000;
    EXPECT_EQ(v % 1000, next[static_cast<std::size_t>(s)]++) << "out of order within input " << s;
  }
  EXPECT_TRUE(drain(merge(background(), std::vector<Receiver<int>>{})).empty());
}

FIBER_TEST(Combinators, FanOutThenMergeProcessesEachOnce) {
  auto src = from_values(background(), iota(1000));
  std::atomic<int> calls{0};
  auto outs = fan_out(background(), src, 4, [&](int v) {
    ++calls;
    return v * 2;
  });
  ASSERT_EQ(outs.size(), 4u);
  std::vector<int> got = drain(merge(background(), outs));
  std::sort(got.begin(), got.end());
  std::vector<int> want = iota(1000);
  for (int& v : want) v *= 2;
  EXPECT_EQ(got, want);
  EXPECT_EQ(calls.load(), 1000);
  EXPECT_THROW((void)fan_out(background(), src, 0, [](int v) { return v; }), ConfigError);
}

FIBER_TEST(Combinators, CancellingAPipelineEndsEveryStage) {
  auto [ctx, cancel] = with_cancel(background());
  auto src = generator(ctx, [i = 0]() mutable -> std::optional<int> { return i++; });
  auto sq = fan_out(ctx, or_done(ctx, src), 3, [](int v) { return v * v; });
  auto merged = merge(ctx, sq);
  auto bridged = bridge(ctx, from_values(ctx, std::vector<Receiver<int>>{merged}));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(bridged.recv().has_value());
  cancel();  // nobody drains anything any more: every stage must still end
  for (int v : bridged) (void)v;
}

}  // namespace
}  // namespace spindle::patterns
