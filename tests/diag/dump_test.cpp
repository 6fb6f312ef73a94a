// Fiber dumps and runtime counters.
#include <atomic>
#include <chrono>
#include <sstream>
#include <string>

#include <spindle/chan.hpp>
#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

FIBER_TEST(Dump, ListsEveryFiberWithItsWaitAndSites) {
  Chan<int> gate(0);
  WaitGroup started, done;
  started.add(1);
  done.go([&] {
    this_fiber::set_name("consumer");
    started.done();
    (void)gate.recv();  // the line the dump must show
  });
  started.wait();
  // The consumer is about to park or parked: wait until the dump shows it blocked.
  std::string dump;
  for (int i = 0; i < 100000; ++i) {
    dump = fiber_dump();
    if (dump.find("[chan receive") != std::string::npos) break;
    this_fiber::yield();
  }
  EXPECT_NE(dump.find("\"consumer\" [chan receive, "), std::string::npos) << dump;
  EXPECT_NE(dump.find("blocked at "), std::string::npos) << dump;
  EXPECT_NE(dump.find("dump_test.cpp"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\"main\" [running]"), std::string::npos) << dump;
  std::ostringstream os;
  dump_fibers(os);
  EXPECT_NE(os.str().find("fiber(s)"), std::string::npos);
  gate.close();
  done.wait();
}

// How long a fiber has waited is counted from its worker's last scheduling round before it
// parked (Worker::round_ticks_: every 61 picks, and on waking from idle), not from a clock read
// at every park. Never less than the wait; and a fiber that parks just after its worker slept
// does not count the sleep. (The sleeps here are what is measured, not synchronisation.)
FIBER_TEST(Dump, WaitDurationCountsFromThePark) {
  using namespace std::chrono_literals;
  this_fiber::sleep_for(300ms);  // every worker idles through it
  Chan<int> gate(0);
  WaitGroup done;
  done.go([gate] {
    this_fiber::set_name("waiter");
    (void)gate.recv();
  });
  std::string dump;
  auto waited_ms = [&dump]() -> long {
    dump = fiber_dump();
    const std::string label = "\"waiter\" [chan receive, ";
    const std::size_t at = dump.find(label);
    return at == std::string::npos ? -1 : std::stol(dump.substr(at + label.size()));
  };
  long first = -1;
  while ((first = waited_ms()) < 0) this_fiber::yield();
  EXPECT_LT(first, 250) << "a worker's idle sleep counted as waiting\n" << dump;
  this_fiber::sleep_for(200ms);
  EXPECT_GE(waited_ms(), 200) << dump;
  gate.close();
  done.wait();
}

FIBER_TEST(Dump, CountersMove) {
  const RuntimeStats before = runtime_stats();
  EXPECT_EQ(before.workers, workers());
  // Each fiber parks on the gate for sure: it is closed only once 100 parks were counted.
  Chan<int> gate(0);
  WaitGroup wg;
  for (int i = 0; i < 100; ++i) wg.go([gate] { (void)gate.recv(); });
  while (runtime_stats().parks < before.parks + 100) this_fiber::yield();
  gate.close();
  // At least one timer fires (a sleep whose deadline passed before it parked needs none).
  while (runtime_stats().timers_fired == before.timers_fired) {
    this_fiber::sleep_for(std::chrono::microseconds(50));
  }
  wg.wait();
  const RuntimeStats after = runtime_stats();
  EXPECT_GE(after.spawned, before.spawned + 100);
  EXPECT_GE(after.parks, before.parks + 100);
  EXPECT_GE(after.timers_fired, before.timers_fired + 1);
  EXPECT_GT(after.context_switches, before.context_switches);
}

// Fibers spawned on one worker and finished on another are unregistered in batches: until then
// they must not appear in a dump nor in num_fibers().
FIBER_TEST(Dump, FinishedFibersLeaveCountAndDumpAtOnce) {
  constexpr int kFibers = 5000;
  const std::uint64_t spawned_before = runtime_stats().spawned;
  Chan<int> gate(0);
  WaitGroup parked, done;
  parked.add(kFibers);
  for (int i = 0; i < kFibers; ++i) {
    done.go([&] {
      this_fiber::set_name("short-lived");
      parked.done();
      (void)gate.recv();
    });
  }
  parked.wait();
  EXPECT_EQ(runtime_stats().spawned, spawned_before + kFibers);
  gate.close();
  done.wait();
  // done.wait() returns once every fiber called done(); they may still be on their way out.
  ASSERT_TRUE(testing::wait_other_fibers_at_most(0));
  EXPECT_EQ(num_fibers(), 1);
  EXPECT_EQ(runtime_stats().live_fibers, 1);
  const std::string dump = fiber_dump();
  EXPECT_EQ(dump.find("short-lived"), std::string::npos) << dump.substr(0, 2000);
  EXPECT_EQ(dump.rfind("1 fiber(s)", 0), 0u) << dump.substr(0, 2000);
}

// A spawning loop that outruns the other workers leaves its fibers without a stack until they
// first run; those that first run on another worker re-register there (FiberRegistry::move).
// Each must show in the dump exactly once, and leave it when it finishes. The other workers are
// held busy while the loop spawns, so its backlog is certain, whatever the machine's speed.
FIBER_TEST(Dump, FibersStartedElsewhereAreListedOnce) {
  constexpr int kFibers = static_cast<int>(testing::scaled(20000, 20000, 5000));  // TSan: 8k threads
  const int others = workers() - 1;
  std::atomic<int> holding{0};
  std::atomic<bool> release{false};
  WaitGroup holders;
  for (int i = 0; i < others; ++i) {
    holders.go([&] {
      holding.fetch_add(1);
      while (!release.load()) {
      }  // keeps its worker: no yield
    });
  }
  while (holding.load() < others) this_fiber::yield();
  Chan<int> gate(0);
  WaitGroup parked, done;
  parked.add(kFibers);
  done.add(kFibers);
  SpawnOptions named;
  named.name = "backlogged";
  for (int i = 0; i < kFibers; ++i) {
    go(named, [&] {
      parked.done();
      (void)gate.recv();
      done.done();
    });
  }
  release.store(true);
  holders.wait();
  parked.wait();
  ASSERT_TRUE(testing::wait_other_fibers_at_most(kFibers));
  EXPECT_EQ(num_fibers(), kFibers + 1);
  std::string dump = fiber_dump();
  std::size_t listed = 0;
  for (std::size_t at = dump.find("\"backlogged\""); at != std::string::npos;
       at = dump.find("\"backlogged\"", at + 1)) {
    ++listed;
  }
  EXPECT_EQ(listed, std::size_t{kFibers});
  EXPECT_EQ(dump.rfind(std::to_string(kFibers + 1) + " fiber(s)", 0), 0u) << dump.substr(0, 200);
  gate.close();
  done.wait();
  ASSERT_TRUE(testing::wait_other_fibers_at_most(0));
  dump = fiber_dump();
  EXPECT_EQ(dump.find("backlogged"), std::string::npos) << dump.substr(0, 2000);
}

// A fiber's count and registration are exact while others spawn and finish on every worker.
FIBER_TEST(Dump, LiveCountIsExactUnderChurn) {
  std::atomic<bool> stop{false};
  WaitGroup churners;
  for (int c = 0; c < 4; ++c) {
    churners.go([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        WaitGroup wg;
        for (int i = 0; i < 50; ++i) wg.go([] {});
        wg.wait();
      }
    });
  }
  // Four churners (each alive throughout) plus main: the count never drops below 5, whatever
  // spawns and exits between the reads of the per-worker counters.
  for (int i = 0; i < 2000; ++i) {
    const std::int64_t n = num_fibers();
    ASSERT_GE(n, 5) << "at read " << i;
    if (i % 16 == 0) this_fiber::yield();
  }
  stop.store(true);
  churners.wait();
}

TEST(DumpOutside, SaysNoRuntime) {
  EXPECT_EQ(fiber_dump(), "no runtime is running\n");
  EXPECT_EQ(runtime_stats().workers, 0);
}

}  // namespace
}  // namespace spindle

namespace spindle {
namespace {

[[gnu::noinline]] int use_stack(int depth) {
  volatile char frame[1024];
  frame[0] = static_cast<char>(depth);
  return depth == 0 ? frame[0] : use_stack(depth - 1) + frame[0];
}

TEST(StackHighWater, ReportsTheDeepestUsePerSpawnSite) {
  Options opts;
  opts.workers = 2;
  opts.stack_high_water = true;
  run(opts, [] {
    WaitGroup wg;
    wg.go([] { (void)use_stack(20); });  // ~20 KiB deep
    wg.go([] { (void)use_stack(1); });
    wg.wait();
  });
  const std::string report = stack_high_water_report();
  EXPECT_NE(report.find("dump_test.cpp"), std::string::npos) << report;
  // The deeper fiber's site reports at least 20 KiB used.
  std::size_t max_seen = 0;
  for (std::size_t pos = report.find("max "); pos != std::string::npos; pos = report.find("max ", pos + 1)) {
    max_seen = std::max<std::size_t>(max_seen, std::stoul(report.substr(pos + 4)));
  }
  EXPECT_GE(max_seen, 20u * 1024) << report;
}

}  // namespace
}  // namespace spindle
