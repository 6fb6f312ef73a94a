// StackPool: every stack it hands out is usable, disjoint from all others and checked for
// overflow (a guard page below it, or a canary outside every other stack); unguarded slabs grow,
// so a flood of fibers costs few mmaps; released stacks are handed out again.
#include <algorithm>
#include <cstddef>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "fiber/stack.hpp"

namespace spindle::detail {
namespace {

constexpr std::size_t kUsable = 64 * 1024;
constexpr std::size_t kStacks = 5'000;
constexpr std::size_t kBatch = 32;  // as workers take them (kStackBatch)

std::vector<Stack> take(StackPool& pool, std::size_t n) {
  std::vector<Stack> out;
  while (out.size() < n) pool.allocate_many(kUsable, std::min(kBatch, n - out.size()), out);
  return out;
}

TEST(StackPool, UnguardedStacksAreDisjointUsableAndEachCheckedForOverflow) {
  StackPool pool(/*max_guarded=*/0);
  std::vector<Stack> stacks = take(pool, kStacks);
  std::sort(stacks.begin(), stacks.end(),
            [](const Stack& a, const Stack& b) { return a.lo < b.lo; });
  std::size_t slab_guarded = 0;
  for (std::size_t i = 0; i < stacks.size(); ++i) {
    const Stack& s = stacks[i];
    ASSERT_EQ(s.region, StackPool::round_size(kUsable));
    ASSERT_GT(s.size(), kUsable / 2);
    if (i > 0) {
      ASSERT_LE(stacks[i - 1].hi, s.lo);
    }
    if (s.guard != nullptr) {
      ++slab_guarded;  // the lowest stack of a slab, on the slab's guard page
      ASSERT_EQ(s.canary, nullptr);
    } else {
      // The canary lies below the stack and above the previous stack's usable bytes.
      ASSERT_NE(s.canary, nullptr);
      ASSERT_LE(s.canary + sizeof kStackCanary, s.lo);
      if (i > 0) {
        ASSERT_GE(s.canary, stacks[i - 1].hi);
      }
      ASSERT_TRUE(s.canary_intact());
    }
    s.lo[0] = 1;  // both ends are mapped and writable
    s.hi[-1] = 1;
  }
  for (const Stack& s : stacks) ASSERT_TRUE(s.canary_intact()) << "a neighbour's write reached it";
  // Slabs double from 64 stacks: 5,000 stacks take 7 slabs, not the 79 of fixed 64-stack slabs.
  EXPECT_LE(slab_guarded, 8u);
  EXPECT_GE(slab_guarded, 1u);

  // Released stacks come back: no new slab for the same number again.
  std::set<char*> first;
  for (const Stack& s : stacks) first.insert(s.lo);
  pool.release_many(stacks.data(), stacks.size());
  for (const Stack& s : take(pool, kStacks)) EXPECT_TRUE(first.count(s.lo) == 1);
}

TEST(StackPool, TheFirstMaxGuardedStacksHaveAGuardPageEach) {
  constexpr std::size_t kGuarded = 100;
  StackPool pool(kGuarded);
  const std::vector<Stack> stacks = take(pool, 3 * kGuarded);
  const auto guarded = std::count_if(stacks.begin(), stacks.end(), [](const Stack& s) {
    return s.guard != nullptr && s.guard + StackPool::page_size() == s.lo;
  });
  // At least the budget (slabs of 64 are carved guarded while under it, so a little more).
  EXPECT_GE(guarded, static_cast<std::ptrdiff_t>(kGuarded));
  EXPECT_LT(guarded, static_cast<std::ptrdiff_t>(kGuarded + 64));
}

}  // namespace
}  // namespace spindle::detail
