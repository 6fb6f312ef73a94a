// Leak checks for GoogleTest, in the spirit of uber-go/goleak.
//
// A test that leaves fibers behind when its spindle::run() returns leaks them (they are
// abandoned, never resumed, their destructors never run). Two ways to catch that:
//
//   // 1. For the whole test binary: fail any test after which run() abandoned fibers.
//   int main(int argc, char** argv) {
//     ::testing::InitGoogleTest(&argc, argv);
//     spindle::testing::install_leak_check();
//     return RUN_ALL_TESTS();
//   }
//
//   // 2. Inside a fiber, at the end of the test body: every other fiber must have finished
//   //    (those still on their way out get a bounded moment).
//   spindle::testing::expect_no_leaked_fibers();
//
// Both failures list the leaked fibers with their dump lines (spindle/debug.hpp).
// Header-only; include it only in GoogleTest programs.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include <spindle/debug.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>

namespace spindle::testing {

class LeakCheckListener : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override { before_ = abandoned_fibers_total(); }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    const std::int64_t leaked = abandoned_fibers_total() - before_;
    if (leaked > 0) {
      ADD_FAILURE() << "leak check: " << info.test_suite_name() << "." << info.name() << " left "
                    << leaked << " fiber(s) alive when its spindle::run() returned:\n"
                    << last_abandoned_dump();
    }
  }

 private:
  std::int64_t before_ = 0;
};

// Appends a LeakCheckListener to the running GoogleTest program (once).
inline void install_leak_check() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  ::testing::UnitTest::GetInstance()->listeners().Append(new LeakCheckListener);
}

// From the test's main fiber: fails the test unless every other fiber finishes within `limit`.
inline void expect_no_leaked_fibers(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (num_fibers() > 1 && std::chrono::steady_clock::now() < deadline) this_fiber::yield();
  if (num_fibers() > 1) {
    ADD_FAILURE() << "leak check: " << num_fibers() - 1
                  << " fiber(s) still alive at the end of the test:\n" << fiber_dump();
  }
}

}  // namespace spindle::testing
