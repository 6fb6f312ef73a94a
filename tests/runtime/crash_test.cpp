// Fatal reports: stack overflow and an exception escaping a detached fiber end the process with
// a message naming the fiber, never a bare SIGSEGV or a silent hang.
#include <gtest/gtest.h>

#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>

#include "fiber/stack.hpp"
#include "runtime/park_latch.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

// Recurses until the stack runs out (the bound is never reached: it only silences the
// compiler's infinite-recursion warning).
[[gnu::noinline]] int recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth > (1 << 30)) return 0;
  return depth + recurse(depth + 1) + frame[0];
}

void overflow_in_fiber(std::size_t max_guarded) {
  Options opts;
  // One worker: nothing else runs while the recursion overflows. With two, the other worker
  // could still be running "lowest-stack" (not yet parked) when the overflow reached its
  // frames, and ASan, describing the bad write, took them for that thread's live stack and
  // failed an internal CHECK instead of reporting (a CI run, 1 in ~10).
  opts.workers = 1;
  opts.max_guarded_stacks = max_guarded;
  run(opts, [] {
    testing::ParkLatch done(1);
    // The lowest stack of an unguarded slab sits on the slab's guard page: a first fiber of the
    // same size takes it, so the one that overflows is a truly unguarded stack. (It never runs:
    // spawned first, it is displaced from run_next by the second, which runs when we wait.)
    testing::ParkLatch hold(1);
    go(SpawnOptions{.name = "lowest-stack", .stack_size = 64 * 1024}, [&] { hold.wait(); });
    go(SpawnOptions{.name = "deep-recursion", .stack_size = 64 * 1024}, [&] {
      recurse(0);
      done.count_down();
    });
    done.wait();
  });
}

class CrashTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(CrashTest, StackOverflowOnGuardedStackIsReported) {
  EXPECT_DEATH(overflow_in_fiber(8192),
               "stack overflow in fiber [0-9]+ \"deep-recursion\" \\(spawned at .*crash_test.cpp");
}

TEST_F(CrashTest, StackOverflowOnMprotectGuardPageIsReported) {
  // The guard pages of kernels without guard regions (before 6.13, Debian 12's among them).
  EXPECT_DEATH(
      {
        detail::use_mprotect_guards(true);
        overflow_in_fiber(8192);
      },
      "stack overflow in fiber [0-9]+ \"deep-recursion\" \\(spawned at .*crash_test.cpp");
}

TEST_F(CrashTest, StackOverflowOnUnguardedStackIsReported) {
  // Under ASan the overflow runs into the neighbouring fiber's live frames, whose redzones ASan
  // has poisoned: ASan may then report the overflowing write itself before the runtime sees a
  // fault. Either report is clear; neither is a bare SIGSEGV.
  const char* expected = spindle::testing::kAsan
                             ? "stack overflow in fiber [0-9]+ \"deep-recursion\".*unguarded|"
                               "AddressSanitizer: stack-buffer-overflow"
                             : "stack overflow in fiber [0-9]+ \"deep-recursion\".*unguarded";
  EXPECT_DEATH(overflow_in_fiber(0), expected);
}

TEST_F(CrashTest, UncaughtExceptionNamesTheFiber) {
  EXPECT_DEATH(run([] {
                 testing::ParkLatch never(1);
                 go(SpawnOptions{.name = "thrower"}, [] { throw std::runtime_error("kaboom"); });
                 never.wait();
               }),
               "panic: uncaught exception in fiber [0-9]+ \"thrower\".*kaboom");
}

}  // namespace
}  // namespace spindle
