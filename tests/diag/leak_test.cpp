// Leak checks: a fiber left behind is reported with its dump line, by expect_no_leaked_fibers()
// inside a test and by the listener that every test binary of this suite installs.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cstdio>

#include <spindle/chan.hpp>
#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>
#include <spindle/testing/leak_check.hpp>
#include <spindle/waitgroup.hpp>

namespace spindle {
namespace {

TEST(LeakCheck, ExpectNoLeakedFibersNamesTheLeakedFiber) {
  run([] {
    Chan<int> release(0);
    WaitGroup wg;
    wg.go(SpawnOptions{.name = "leaky-worker"}, [&] { (void)release.recv(); });
    // ON_ALL_THREADS: the fiber may resume on another worker thread while it polls.
    EXPECT_NONFATAL_FAILURE_ON_ALL_THREADS(testing::expect_no_leaked_fibers(std::chrono::milliseconds(20)),
                            "\"leaky-worker\" [chan receive");
    release.close();  // now let it finish, so this test itself leaks nothing
    wg.wait();
  });
}

TEST(LeakCheck, AbandonedFibersAreCountedAndDumped) {
  // In a child process, so that the abandoned fiber does not fail this test through the listener.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const auto before = abandoned_fibers_total();
        run([] {
          go(SpawnOptions{.name = "forgotten"}, [] { (void)Chan<int>().recv(); });  // nil: no allocation to leak
          this_fiber::yield();
        });
        std::fprintf(stderr, "abandoned %lld\n%s", static_cast<long long>(abandoned_fibers_total() - before),
                     last_abandoned_dump().c_str());
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "abandoned 1\n(.|\n)*\"forgotten\" \\[chan");
}

TEST(LeakCheck, AbandonedUnstartedFibersAreCountedAndDumped) {
  // Fibers spawned past the backlog wait without a stack; abandoned before their first run,
  // they are reported like any other (and their records freed: ASan's leak check runs here).
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const auto before = abandoned_fibers_total();
        run(Options{.workers = 1}, [] {
          for (int i = 0; i < 5000; ++i) go(SpawnOptions{.name = "never-started"}, [] {});
        });
        std::fprintf(stderr, "abandoned %lld\n%s", static_cast<long long>(abandoned_fibers_total() - before),
                     last_abandoned_dump().c_str());
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "abandoned 5000\n(.|\n)*\"never-started\" \\[running");
}

}  // namespace
}  // namespace spindle
