// Fiber dumps and runtime counters.
#include <sstream>

#include <spindle/chan.hpp>
#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

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

FIBER_TEST(Dump, CountersMove) {
  const RuntimeStats before = runtime_stats();
  EXPECT_EQ(before.workers, workers());
  WaitGroup wg;
  for (int i = 0; i < 100; ++i) wg.go([] { this_fiber::sleep_for(std::chrono::microseconds(10)); });
  wg.wait();
  const RuntimeStats after = runtime_stats();
  EXPECT_GE(after.spawned, before.spawned + 100);
  EXPECT_GE(after.parks, before.parks + 100);
  EXPECT_GE(after.timers_fired, before.timers_fired + 1);
  EXPECT_GT(after.context_switches, before.context_switches);
}

TEST(DumpOutside, SaysNoRuntime) {
  EXPECT_EQ(fiber_dump(), "no runtime is running\n");
  EXPECT_EQ(runtime_stats().workers, 0);
}

}  // namespace
}  // namespace spindle
