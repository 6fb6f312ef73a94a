// StackPool: every stack it hands out is usable, disjoint from all others and checked for
// overflow (a guard page below it, or a canary outside every other stack); unguarded slabs grow,
// so a flood of fibers costs few mmaps; released stacks are handed out again. Guard pages are
// also tested as PROT_NONE pages, all that kernels before 6.13 offer.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/waitgroup.hpp>

#include "fiber/stack.hpp"
#include "support/scale.hpp"

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

// The protection of the mapping holding `addr` in /proc/self/maps ("rw-p", "---p"), or "".
std::string protection_at(const void* addr) {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) == 3 && lo <= a && a < hi) {
      return perms;
    }
  }
  return "";
}

std::size_t inaccessible_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  std::size_t n = 0;
  while (std::getline(maps, line)) n += line.find(" ---p ") != std::string::npos ? 1 : 0;
  return n;
}

// Guard pages as on kernels before 6.13, where MADV_GUARD_INSTALL does not exist (Debian 12's
// own kernel is 6.1): PROT_NONE pages, each splitting its slab's mapping.
class MprotectGuards : public ::testing::Test {
 protected:
  void SetUp() override {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    previous_ = use_mprotect_guards(true);
  }
  void TearDown() override { use_mprotect_guards(previous_); }

 private:
  bool previous_ = false;
};

TEST_F(MprotectGuards, EveryGuardIsAnInaccessiblePageBelowItsStack) {
  constexpr std::size_t kGuarded = 100;
  StackPool pool(kGuarded);
  const std::vector<Stack> stacks = take(pool, kGuarded);
  for (const Stack& s : stacks) {
    ASSERT_NE(s.guard, nullptr);
    ASSERT_EQ(s.guard + StackPool::page_size(), s.lo);
    EXPECT_EQ(protection_at(s.guard), "---p");
    EXPECT_EQ(protection_at(s.lo), "rw-p");
    s.lo[0] = 1;
    s.hi[-1] = 1;
  }
  // Past the budget, an unguarded slab still has one guard page at its bottom.
  StackPool unguarded(/*max_guarded=*/0);
  std::size_t slab_guards = 0;
  for (const Stack& s : take(unguarded, kGuarded)) {
    if (s.guard == nullptr) continue;
    ++slab_guards;
    EXPECT_EQ(protection_at(s.guard), "---p");
  }
  EXPECT_GE(slab_guards, 1u);
  EXPECT_DEATH(*static_cast<volatile char*>(stacks[0].guard) = 1, "");
}

TEST_F(MprotectGuards, ARuntimeRunsPastItsGuardBudgetOnThem) {
  // TSan makes each fiber's creation slow (its own trace): fewer, still thrice the budget.
  constexpr int kFibers = static_cast<int>(testing::scaled(3'000, 3'000, 600));
  constexpr std::size_t kGuarded = static_cast<std::size_t>(kFibers / 3);
  const std::size_t before = inaccessible_mappings();
  std::size_t while_parked = 0;
  std::atomic<int> woke{0};
  Options opts;
  opts.workers = 2;
  opts.max_guarded_stacks = kGuarded;
  run(opts, [&] {
    for (int round = 0; round < 2; ++round) {  // the second round reuses the first one's stacks
      Chan<int> release(0);
      WaitGroup parked, done;
      parked.add(kFibers);
      done.add(kFibers);
      for (int i = 0; i < kFibers; ++i) {
        go([&, release] {
          parked.done();
          (void)release.recv();
          woke.fetch_add(1, std::memory_order_relaxed);
          done.done();
        });
      }
      parked.wait();  // every fiber holds a stack now: the budget is spent
      if (round == 0) while_parked = inaccessible_mappings();
      release.close();
      done.wait();
    }
  });
  EXPECT_EQ(woke.load(), 2 * kFibers);
  EXPECT_GE(while_parked, before + kGuarded);  // one PROT_NONE mapping per guarded stack
}

}  // namespace
}  // namespace spindle::detail
