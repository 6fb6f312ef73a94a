// retry: the backoff schedule (exact with a fixed random draw), max_attempts, max_elapsed (no
// pointless last sleep), non-retryable errors, ctx cancellation before and during a sleep,
// value-returning operations, exceptions not retried, and bad settings. Sleeps happen on a
// ManualClock driven by the test.
#include <atomic>
#include <stdexcept>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/patterns/retry.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

const std::error_code kTransient = make_error_code(std::errc::resource_unavailable_try_again);
const std::error_code kFatal = make_error_code(std::errc::permission_denied);

FIBER_TEST(Retry, BackoffSchedule) {
  Backoff b{.initial = 100ms, .max = 1s, .multiplier = 2};
  EXPECT_EQ(b.delay(1, 0.5), 50ms);
  EXPECT_EQ(b.delay(2, 0.5), 100ms);
  EXPECT_EQ(b.delay(3, 0.5), 200ms);
  EXPECT_EQ(b.delay(4, 0.5), 400ms);
  EXPECT_EQ(b.delay(5, 0.5), 500ms);  // capped at 1 s before jitter
  EXPECT_EQ(b.delay(500, 0.5), 500ms);  // no overflow far out
  EXPECT_EQ(b.delay(3, 0.0), 0ms);
  Backoff exact{.initial = 100ms, .max = 1s, .full_jitter = false};
  EXPECT_EQ(exact.delay(1, 0.9), 100ms);
  EXPECT_EQ(exact.delay(4, 0.9), 800ms);
  EXPECT_EQ(exact.delay(5, 0.9), 1s);
  Backoff defaults;
  EXPECT_EQ(defaults.delay(1, 0.0), 0ms);
  EXPECT_EQ(Backoff{.full_jitter = false}.delay(1, 0), 100ms);
  EXPECT_EQ(Backoff{.full_jitter = false}.delay(100, 0), 30s);
}

// Runs retry in a fiber and drives the clock through each sleep, recording the delays.
struct Driver {
  ManualClock clock;
  std::vector<Duration> delays;
  RetrySettings settings(RetrySettings s) {
    s.clock = &clock;
    s.random = [] { return 0.5; };
    s.on_retry = [this](int, std::error_code, Duration d) { delays.push_back(d); };
    return s;
  }
};

FIBER_TEST(Retry, SucceedsAfterTransientFailures) {
  Driver d;
  std::atomic<int> calls{0};
  WaitGroup wg;
  Result<int> r = 0;
  wg.go([&] {
    r = retry(background(), d.settings({.max_attempts = 5, .backoff = {.initial = 100ms, .max = 10s}}),
              [&](const Context&) -> Result<int> {
                if (++calls < 4) return kTransient;
                return 7;
              });
  });
  for (Duration want : {50ms, 100ms, 200ms}) {
    d.clock.block_until_pending(1);
    d.clock.advance(want - 1ns);
    EXPECT_EQ(d.clock.pending(), 1u);  // not a nanosecond early
    d.clock.advance(1ns);
  }
  wg.wait();
  EXPECT_EQ(*r, 7);
  EXPECT_EQ(calls.load(), 4);
  EXPECT_EQ(d.delays, (std::vector<Duration>{50ms, 100ms, 200ms}));
}

FIBER_TEST(Retry, MaxAttemptsReturnsTheLastError) {
  Driver d;
  std::atomic<int> calls{0};
  WaitGroup wg;
  std::error_code ec;
  wg.go([&] {
    ec = retry(background(), d.settings({.max_attempts = 3}), [&] {
      ++calls;
      return kTransient;
    });
  });
  for (int i = 0; i < 2; ++i) {
    d.clock.block_until_pending(1);
    d.clock.advance(1h);
  }
  wg.wait();
  EXPECT_EQ(ec, kTransient);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(d.delays.size(), 2u);
}

FIBER_TEST(Retry, MaxElapsedSkipsAPointlessLastSleep) {
  Driver d;
  std::atomic<int> calls{0};
  WaitGroup wg;
  std::error_code ec;
  wg.go([&] {
    ec = retry(background(),
               d.settings({.max_elapsed = 300ms,
                           .backoff = {.initial = 100ms, .max = 10s, .full_jitter = false}}),
               [&] {
                 ++calls;
                 return kTransient;
               });
  });
  // Sleeps of 100 ms (t=100) and 200 ms (t=300) fit; the next (400 ms) would end past 300 ms.
  d.clock.block_until_pending(1);
  d.clock.advance(100ms);
  d.clock.block_until_pending(1);
  d.clock.advance(200ms);
  wg.wait();
  EXPECT_EQ(ec, kTransient);
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(d.delays, (std::vector<Duration>{100ms, 200ms}));
}

FIBER_TEST(Retry, NonRetryableStopsAtOnce) {
  Driver d;
  int calls = 0;
  auto only_transient = [](std::error_code ec) { return ec == kTransient; };
  EXPECT_EQ(retry(background(), d.settings({.retryable = only_transient}), [&] {
              ++calls;
              return kFatal;
            }),
            kFatal);
  EXPECT_EQ(calls, 1);
  // By default the context's own errors are not retried.
  EXPECT_EQ(retry(background(), d.settings({}), [&] {
              ++calls;
              return make_error_code(spindle::errc::canceled);
            }),
            spindle::errc::canceled);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(d.delays.empty());
}

FIBER_TEST(Retry, ContextCutsTheSleepShort) {
  Driver d;
  auto [ctx, cancel] = with_cancel(background());
  std::atomic<int> calls{0};
  WaitGroup wg;
  std::error_code ec;
  wg.go([&, ctx = ctx] {
    ec = retry(ctx, d.settings({}), [&] {
      ++calls;
      return kTransient;
    });
  });
  d.clock.block_until_pending(1);  // sleeping after the first failure
  cancel();
  wg.wait();
  EXPECT_EQ(ec, spindle::errc::canceled);
  EXPECT_EQ(calls.load(), 1);
  EXPECT_EQ(d.clock.pending(), 0u);
  // A context already done: not even one attempt.
  EXPECT_EQ(retry(ctx, d.settings({}), [&] {
              ++calls;
              return std::error_code{};
            }),
            spindle::errc::canceled);
  EXPECT_EQ(calls.load(), 1);
}

FIBER_TEST(Retry, ValuesVoidAndExceptions) {
  Driver d;
  EXPECT_EQ(*retry(background(), d.settings({}), [] { return 5; }), 5);
  EXPECT_FALSE(retry(background(), d.settings({}), [] {}));
  int calls = 0;
  EXPECT_THROW((void)retry(background(), d.settings({}), [&]() -> std::error_code {
                 ++calls;
                 throw std::logic_error("bug");
               }),
               std::logic_error);
  EXPECT_EQ(calls, 1);  // not retried
}

FIBER_TEST(Retry, RealClockAndRandomJitter) {
  int calls = 0;
  EXPECT_FALSE(retry(background(), {.backoff = {.initial = 1ms, .max = 2ms}}, [&] {
    return ++calls < 3 ? kTransient : std::error_code{};
  }));
  EXPECT_EQ(calls, 3);
}

FIBER_TEST(Retry, BadSettingsThrow) {
  auto f = [] {};
  EXPECT_THROW((void)retry(background(), {.max_attempts = -1}, f), ConfigError);
  EXPECT_THROW((void)retry(background(), {.max_elapsed = -1s}, f), ConfigError);
  EXPECT_THROW((void)retry(background(), {.backoff = {.initial = -1s}}, f), ConfigError);
  EXPECT_THROW((void)retry(background(), {.backoff = {.multiplier = 0.5}}, f), ConfigError);
  EXPECT_THROW((void)retry(background(), {.backoff = {.initial = 1s, .max = 500ms}}, f), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
