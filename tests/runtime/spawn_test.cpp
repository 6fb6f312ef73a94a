// Spawning and running fibers: every fiber runs exactly once, at every worker count.
#include <atomic>
#include <memory>
#include <vector>

#include <spindle/errors.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>

#include "runtime/park_latch.hpp"
#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

constexpr int kMillion = static_cast<int>(testing::scaled(1'000'000, 100'000, 5'000));

FIBER_TEST(Spawn, MillionFibersEachRunExactlyOnce) {
  auto runs = std::make_unique<std::atomic<std::uint8_t>[]>(kMillion);
  testing::ParkLatch done(kMillion);
  for (int i = 0; i < kMillion; ++i) {
    go([&runs, &done, i] {
      runs[i].fetch_add(1, std::memory_order_relaxed);
      done.count_down();
    });
  }
  done.wait();
  int wrong = 0;
  for (int i = 0; i < kMillion; ++i) wrong += runs[i].load() != 1;
  EXPECT_EQ(wrong, 0);
}

FIBER_TEST(Spawn, ArgumentsAreDecayCopiedAndMoveOnlyWorks) {
  testing::ParkLatch done(2);
  int seen = 0;
  auto p = std::make_unique<int>(41);
  go([&](std::unique_ptr<int> q, int add) {
       seen = *q + add;
       done.count_down();
     },
     std::move(p), 1);
  std::string s = "kept";
  std::string copy_seen;
  go([&](std::string t) {
       copy_seen = t;
       done.count_down();
     },
     s);
  done.wait();
  EXPECT_EQ(seen, 42);
  EXPECT_EQ(copy_seen, "kept");
  EXPECT_EQ(s, "kept");
}

FIBER_TEST(Spawn, NestedSpawnTreeSumsExactly) {
  // skynet-shaped: a 10-ary tree of 100,000 leaves.
  std::atomic<long long> sum{0};
  testing::ParkLatch done(1);
  struct Node {
    static void run(std::atomic<long long>& sum, testing::ParkLatch& parent, long long num,
                    long long size) {
      if (size == 1) {
        sum.fetch_add(num, std::memory_order_relaxed);
        parent.count_down();
        return;
      }
      testing::ParkLatch children(10);
      const long long step = size / 10;
      for (int i = 0; i < 10; ++i) {
        go([&sum, &children, num, step, i] { run(sum, children, num + i * step, step); });
      }
      children.wait();
      parent.count_down();
    }
  };
  constexpr long long kLeaves = testing::scaled(100'000, 10'000, 1'000);
  go([&] { Node::run(sum, done, 0, kLeaves); });
  done.wait();
  EXPECT_EQ(sum.load(), kLeaves * (kLeaves - 1) / 2);
}

FIBER_TEST(Spawn, IdsAreUniqueAndNamesStick) {
  const auto main_id = this_fiber::id();
  EXPECT_NE(main_id, 0u);
  std::uint64_t child_id = 0;
  std::string child_name;
  testing::ParkLatch done(1);
  auto spawned = go(SpawnOptions{.name = "worker-7"}, [&] {
    child_id = this_fiber::id();
    child_name = std::string(this_fiber::name());
    done.count_down();
  });
  done.wait();
  EXPECT_EQ(spawned, child_id);
  EXPECT_NE(child_id, main_id);
  EXPECT_EQ(child_name, "worker-7");
  this_fiber::set_name("renamed");
  EXPECT_EQ(this_fiber::name(), "renamed");
}

FIBER_TEST(Spawn, LargeStackOnRequest) {
  testing::ParkLatch done(1);
  long total = 0;
  go(SpawnOptions{.name = "big", .stack_size = 1024 * 1024}, [&] {
    volatile char buf[512 * 1024];
    for (std::size_t i = 0; i < sizeof buf; i += 4096) buf[i] = static_cast<char>(1 + i / 4096);
    for (std::size_t i = 0; i < sizeof buf; i += 4096) total += buf[i];
    done.count_down();
  });
  done.wait();
  EXPECT_NE(total, 0);
}

FIBER_TEST(Spawn, NumFibersCountsLiveFibers) {
  EXPECT_EQ(num_fibers(), 1);
  EXPECT_EQ(num_workers(), workers());
  testing::ParkLatch started(10);
  testing::ParkLatch release(1);
  testing::ParkLatch finished(10);
  for (int i = 0; i < 10; ++i) {
    go([&] {
      started.count_down();
      release.wait();
      finished.count_down();
    });
  }
  started.wait();
  EXPECT_EQ(num_fibers(), 11);
  release.count_down();
  // A child may not have reached release.wait() yet: the latches must outlive every child.
  finished.wait();
}

TEST(Run, ReturnsTheMainFunctionsValue) {
  EXPECT_EQ(run([] { return 42; }), 42);
  EXPECT_EQ(num_fibers(), 0);
  EXPECT_EQ(num_workers(), 0);
}

TEST(Run, RethrowsWhatTheMainFunctionThrows) {
  EXPECT_THROW(run([]() -> int { throw std::runtime_error("boom"); }), std::runtime_error);
}

TEST(Run, DoesNotNest) {
  run([] { EXPECT_THROW(run([] {}), RuntimeError); });
}

TEST(Run, GoOutsideARuntimeThrows) { EXPECT_THROW(go([] {}), RuntimeError); }

TEST(Run, HonoursWorkerCountOption) {
  EXPECT_EQ(run(Options{.workers = 3}, [] { return num_workers(); }), 3);
}

}  // namespace
}  // namespace spindle
