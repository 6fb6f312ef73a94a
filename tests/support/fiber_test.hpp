// FIBER_TEST: a GoogleTest test whose body runs inside a spindle fiber, once per worker count
// (1, 2 and 4), with two guards:
//  * leak check: when the body returns, every fiber it spawned must have finished (the fixture
//    yields for a bounded time to let exiting fibers leave), else the test fails and lists them;
//  * hang guard: a body that runs longer than SPINDLE_TEST_TIMEOUT_S (default 120 s) aborts the
//    test binary with a message instead of stalling CI.
//
//   FIBER_TEST(Chan, Unbuffered) { ... EXPECT_EQ(...); ... }
//
// Inside the body, `workers()` gives the worker count of this instantiation.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <spindle/runtime.hpp>

namespace spindle::testing {

// Runs `body` as the main fiber of a runtime with `workers` workers, then checks for leaks.
void run_in_fiber(int workers, const std::function<void()>& body, bool force_migration = false);

// Fibers alive now, other than the caller (the test body's main fiber).
std::int64_t other_live_fibers();

// Waits (yielding, bounded) until at most `n` fibers besides the caller are alive.
bool wait_other_fibers_at_most(std::int64_t n, std::chrono::milliseconds limit = std::chrono::seconds(5));

// Fibers parked now with the wait `reason` as fiber_dump() names it ("semaphore acquire",
// "chan send", ...). A fiber shows its wait only from inside park(), after it has queued: a
// test that needs "n fibers queued, in this order" waits for this count rather than for time.
int fibers_parked_on(std::string_view reason);

// Yields until fibers_parked_on(reason) == n; false after `limit` (the test then fails).
bool wait_parked_on(std::string_view reason, int n,
                    std::chrono::milliseconds limit = std::chrono::seconds(20));

class FiberTest : public ::testing::TestWithParam<int> {
 protected:
  [[nodiscard]] int workers() const { return GetParam(); }
};

std::string worker_param_name(const ::testing::TestParamInfo<int>& info);

}  // namespace spindle::testing

#define SPINDLE_FIBER_TEST_IMPL(suite, name, ...)                                          \
  class suite##_##name##_Fiber : public ::spindle::testing::FiberTest {                     \
   public:                                                                                 \
    void Body();                                                                           \
  };                                                                                       \
  TEST_P(suite##_##name##_Fiber, name) {                                                   \
    ::spindle::testing::run_in_fiber(workers(), [this] { Body(); });                       \
  }                                                                                        \
  INSTANTIATE_TEST_SUITE_P(suite, suite##_##name##_Fiber, ::testing::Values(__VA_ARGS__),  \
                           ::spindle::testing::worker_param_name);                         \
  void suite##_##name##_Fiber::Body()

// A test body run in a fiber at 1, 2 and 4 workers.
#define FIBER_TEST(suite, name) SPINDLE_FIBER_TEST_IMPL(suite, name, 1, 2, 4)
// The same at the worker counts given.
#define FIBER_TEST_AT(suite, name, ...) SPINDLE_FIBER_TEST_IMPL(suite, name, __VA_ARGS__)
