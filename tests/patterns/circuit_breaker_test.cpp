// CircuitBreaker: gobreaker's state machine on a ManualClock, with the seeds' two flaws fixed
// (success resets the failure streak; half-open admits a bounded number of probes), generations,
// windows (tumbling and rolling), exclusions, callbacks, both call forms, and a concurrent run
// whose books must balance exactly.
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include <spindle/patterns/circuit_breaker.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

const std::error_code kFail = make_error_code(std::errc::io_error);

void fail_n(CircuitBreaker& cb, int n) {
  for (int i = 0; i < n; ++i) {
    auto t = cb.allow();
    ASSERT_TRUE(t.ok()) << "request " << i << ": " << t.error().message();
    t->failure();
  }
}
void succeed_n(CircuitBreaker& cb, int n) {
  for (int i = 0; i < n; ++i) {
    auto t = cb.allow();
    ASSERT_TRUE(t.ok());
    t->success();
  }
}

FIBER_TEST(CircuitBreaker, DefaultsTripAfterSixFailuresThenHalfOpenAfterSixtySeconds) {
  ManualClock clock;
  CircuitBreaker cb({.name = "db", .clock = &clock});
  EXPECT_EQ(cb.name(), "db");
  fail_n(cb, 5);
  EXPECT_EQ(cb.state(), BreakerState::closed);
  fail_n(cb, 1);  // consecutive_failures > 5
  EXPECT_EQ(cb.state(), BreakerState::open);
  EXPECT_EQ(cb.allow().error(), errc::circuit_open);
  clock.advance(59s);
  EXPECT_EQ(cb.state(), BreakerState::open);
  clock.advance(1s);
  EXPECT_EQ(cb.state(), BreakerState::half_open);
  auto probe = cb.allow();
  ASSERT_TRUE(probe.ok());
  EXPECT_EQ(cb.allow().error(), errc::too_many_requests);  // max_requests 0 means 1
  probe->success();
  EXPECT_EQ(cb.state(), BreakerState::closed);
  EXPECT_EQ(cb.counts(), Counts{});
}

// Seed flaw 1: the failure count was never reset by a success while closed.
FIBER_TEST(CircuitBreaker, SuccessResetsTheFailureStreak) {
  ManualClock clock;
  CircuitBreaker cb({.ready_to_trip = trip::consecutive_failures(3), .clock = &clock});
  for (int day = 0; day < 100; ++day) {
    fail_n(cb, 2);
    succeed_n(cb, 1);
    clock.advance(24h);
  }
  EXPECT_EQ(cb.state(), BreakerState::closed);
  const Counts c = cb.counts();
  EXPECT_EQ(c.consecutive_failures, 0u);
  EXPECT_EQ(c.total_failures, 200u);  // interval 0: counted until a state change
  fail_n(cb, 3);
  EXPECT_EQ(cb.state(), BreakerState::open);
}

// Seed flaw 2: every caller went through in half-open.
FIBER_TEST(CircuitBreaker, HalfOpenAdmitsBoundedProbesAndNeedsThemAllToSucceed) {
  ManualClock clock;
  CircuitBreaker cb({.max_requests = 3, .timeout = 10s,
                     .ready_to_trip = trip::consecutive_failures(1), .clock = &clock});
  fail_n(cb, 1);
  clock.advance(10s);
  std::vector<CircuitBreaker::Ticket> probes;
  for (int i = 0; i < 3; ++i) probes.push_back(std::move(cb.allow().value()));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(cb.allow().error(), errc::too_many_requests);
  probes[0].success();
  probes[1].success();
  EXPECT_EQ(cb.state(), BreakerState::half_open);
  EXPECT_EQ(cb.allow().error(), errc::too_many_requests);  // slots are not recycled by success
  probes[2].success();
  EXPECT_EQ(cb.state(), BreakerState::closed);

  // One failing probe reopens at once; the others' outcomes are then stale.
  fail_n(cb, 1);
  clock.advance(10s);
  probes.clear();
  for (int i = 0; i < 3; ++i) probes.push_back(std::move(cb.allow().value()));
  probes[0].success();
  probes[1].failure();
  EXPECT_EQ(cb.state(), BreakerState::open);
  const auto stale_before = cb.stats().stale;
  probes[2].success();
  EXPECT_EQ(cb.stats().stale, stale_before + 1);
  EXPECT_EQ(cb.state(), BreakerState::open);
}

FIBER_TEST(CircuitBreaker, ResultsFromBeforeAStateChangeAreIgnored) {
  ManualClock clock;
  CircuitBreaker cb({.ready_to_trip = trip::consecutive_failures(2), .clock = &clock});
  auto slow = cb.allow();  // admitted while closed, generation g
  ASSERT_TRUE(slow.ok());
  const std::uint64_t g = slow->generation();
  fail_n(cb, 2);
  EXPECT_EQ(cb.state(), BreakerState::open);
  EXPECT_GT(cb.generation(), g);
  clock.advance(60s);
  EXPECT_EQ(cb.state(), BreakerState::half_open);
  slow->success();  // would close a half-open breaker if it counted
  EXPECT_EQ(cb.state(), BreakerState::half_open);
  EXPECT_EQ(cb.stats().stale, 1u);
  EXPECT_EQ(cb.counts(), Counts{});
}

FIBER_TEST(CircuitBreaker, TumblingIntervalClearsCountsAndStartsAGeneration) {
  ManualClock clock;
  CircuitBreaker cb({.interval = 10s, .ready_to_trip = trip::consecutive_failures(3),
                     .clock = &clock});
  fail_n(cb, 2);
  auto late = cb.allow();
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(cb.counts().total_failures, 2u);
  const auto g = cb.generation();
  clock.advance(10s);
  EXPECT_EQ(cb.counts(), Counts{});
  EXPECT_EQ(cb.generation(), g + 1);
  late->failure();  // from the previous window: ignored
  EXPECT_EQ(cb.counts().total_failures, 0u);
  fail_n(cb, 2);
  EXPECT_EQ(cb.state(), BreakerState::closed);
  fail_n(cb, 1);
  EXPECT_EQ(cb.state(), BreakerState::open);
}

FIBER_TEST(CircuitBreaker, RollingWindowFailureRatio) {
  ManualClock clock;
  CircuitBreaker cb({.interval = 10s, .buckets = 10,
                     .ready_to_trip = trip::failure_ratio(0.5, 4), .clock = &clock});
  fail_n(cb, 3);          // t=0: 3 failures, below min_requests
  EXPECT_EQ(cb.state(), BreakerState::closed);
  clock.advance(5s);
  succeed_n(cb, 4);       // t=5: window has 3 fail + 4 ok (ratio 3/7)
  clock.advance(5s);      // t=10: the t=0 slice expires: 0 fail + 4 ok
  Counts c = cb.counts();
  EXPECT_EQ(c.total_failures, 0u);
  EXPECT_EQ(c.total_successes, 4u);
  EXPECT_EQ(c.requests, 4u);
  fail_n(cb, 3);          // 3 fail + 4 ok: 3/7 < 0.5
  EXPECT_EQ(cb.state(), BreakerState::closed);
  clock.advance(5s);      // t=15: the t=5 slice expires: 3 fail + 0 ok
  c = cb.counts();
  EXPECT_EQ(c.total_successes, 0u);
  EXPECT_EQ(c.total_failures, 3u);
  fail_n(cb, 1);          // 4 fail, ratio 1 >= 0.5 with 4 outcomes: trips
  EXPECT_EQ(cb.state(), BreakerState::open);
  clock.advance(1h);      // long idle: everything expires at once
  EXPECT_EQ(cb.state(), BreakerState::half_open);
}

FIBER_TEST(CircuitBreaker, ConsecutiveOrRatio) {
  ManualClock clock;
  CircuitBreaker cb({.interval = 1min, .buckets = 6,
                     .ready_to_trip = trip::any_of(trip::consecutive_failures(3),
                                                   trip::failure_ratio(0.9, 100)),
                     .clock = &clock});
  fail_n(cb, 2);
  succeed_n(cb, 1);
  fail_n(cb, 2);
  EXPECT_EQ(cb.state(), BreakerState::closed);
  fail_n(cb, 1);
  EXPECT_EQ(cb.state(), BreakerState::open);
}

FIBER_TEST(CircuitBreaker, StateChangeCallbacksInOrder) {
  ManualClock clock;
  std::vector<std::string> log;
  CircuitBreaker* self = nullptr;
  CircuitBreaker cb({.name = "api",
                     .timeout = 5s,
                     .ready_to_trip = trip::consecutive_failures(1),
                     .on_state_change =
                         [&](std::string_view name, BreakerState from, BreakerState to) {
                           // Calling back into the breaker from the callback is allowed.
                           (void)self->counts();
                           log.push_back(std::string(name) + ":" + to_string(from) + "->" +
                                         to_string(to));
                         },
                     .clock = &clock});
  self = &cb;
  fail_n(cb, 1);
  clock.advance(5s);
  fail_n(cb, 1);  // the lazy open->half-open, then half-open->open, in one call
  clock.advance(5s);
  succeed_n(cb, 1);
  EXPECT_EQ(log, (std::vector<std::string>{"api:closed->open", "api:open->half-open",
                                           "api:half-open->open", "api:open->half-open",
                                           "api:half-open->closed"}));
  EXPECT_EQ(cb.stats().state_changes, 5u);
}

FIBER_TEST(CircuitBreaker, ExcludedOutcomesCountForNothingAndFreeProbeSlots) {
  ManualClock clock;
  const std::error_code kCanceled = make_error_code(spindle::errc::canceled);
  const std::error_code kNotFound = make_error_code(std::errc::no_such_file_or_directory);
  CircuitBreaker cb({.timeout = 1s,
                     .ready_to_trip = trip::consecutive_failures(2),
                     .is_successful = [&](std::error_code ec) { return !ec || ec == kNotFound; },
                     .is_excluded = [&](std::error_code ec) { return ec == kCanceled; },
                     .clock = &clock});
  for (int i = 0; i < 10; ++i) cb.allow().value().report(kCanceled);
  for (int i = 0; i < 10; ++i) cb.allow().value().report(kNotFound);
  Counts c = cb.counts();
  EXPECT_EQ(c.requests, 10u);
  EXPECT_EQ(c.total_successes, 10u);
  EXPECT_EQ(c.total_failures, 0u);
  cb.allow().value().report(kFail);
  cb.allow().value().report(kFail);
  EXPECT_EQ(cb.state(), BreakerState::open);
  clock.advance(1s);
  auto p = cb.allow();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(cb.allow().error(), errc::too_many_requests);
  p->report(kCanceled);  // gives the slot back
  EXPECT_EQ(cb.state(), BreakerState::half_open);
  auto p2 = cb.allow();
  ASSERT_TRUE(p2.ok());
  p2->report(std::error_code{});
  EXPECT_EQ(cb.state(), BreakerState::closed);
  EXPECT_EQ(cb.stats().excluded, 11u);
}

FIBER_TEST(CircuitBreaker, DroppedTicketCountsAsFailure) {
  ManualClock clock;
  CircuitBreaker cb({.ready_to_trip = trip::consecutive_failures(2), .clock = &clock});
  { auto t = cb.allow(); }
  EXPECT_EQ(cb.counts().consecutive_failures, 1u);
  {
    auto t = cb.allow();
    auto moved = std::move(t.value());
    EXPECT_TRUE(moved.pending());
  }
  EXPECT_EQ(cb.state(), BreakerState::open);
}

FIBER_TEST(CircuitBreaker, ExecuteForms) {
  ManualClock clock;
  CircuitBreaker cb({.ready_to_trip = trip::consecutive_failures(3), .clock = &clock});
  int calls = 0;
  EXPECT_FALSE(cb.execute([&] { ++calls; }));
  EXPECT_EQ(cb.execute([&] { ++calls; return kFail; }), kFail);
  Result<int> r = cb.execute([&]() -> Result<int> { ++calls; return 42; });
  EXPECT_EQ(*r, 42);
  Result<std::string> s = cb.execute([&] { ++calls; return std::string("plain"); });
  EXPECT_EQ(*s, "plain");
  EXPECT_THROW(cb.execute([&]() -> std::error_code { ++calls; throw std::runtime_error("boom"); }),
               std::runtime_error);
  EXPECT_EQ(cb.counts().consecutive_failures, 1u);
  EXPECT_EQ(cb.execute([&]() -> Result<int> { ++calls; return kFail; }).error(), kFail);
  EXPECT_EQ(cb.execute([&] { ++calls; return kFail; }), kFail);
  EXPECT_EQ(cb.state(), BreakerState::open);
  EXPECT_EQ(cb.execute([&] { ++calls; }), errc::circuit_open);
  EXPECT_EQ(cb.execute([&]() -> Result<int> { ++calls; return 1; }).error(), errc::circuit_open);
  EXPECT_EQ(calls, 7);
  EXPECT_EQ(errc::circuit_open, cb.allow().error());
  EXPECT_EQ(make_error_code(errc::circuit_open).message(), "circuit breaker is open");
}

FIBER_TEST(CircuitBreaker, BadSettingsThrow) {
  EXPECT_THROW(CircuitBreaker({.interval = -1s}), ConfigError);
  EXPECT_THROW(CircuitBreaker({.timeout = -1s}), ConfigError);
  EXPECT_THROW(CircuitBreaker({.buckets = 4}), ConfigError);
  EXPECT_THROW(CircuitBreaker({.interval = 2ns, .buckets = 4}), ConfigError);
  EXPECT_THROW((void)trip::consecutive_failures(0), ConfigError);
  EXPECT_THROW((void)trip::failure_ratio(0.0, 10), ConfigError);
  EXPECT_THROW((void)trip::failure_ratio(1.5, 10), ConfigError);
  EXPECT_THROW((void)trip::failure_ratio(0.5, 0), ConfigError);
}

// Many fibers at once: the half-open bound holds exactly, and every call is accounted for.
FIBER_TEST(CircuitBreaker, ConcurrentProbesAreBoundedAndBooksBalance) {
  ManualClock clock;
  CircuitBreaker cb({.max_requests = 4, .timeout = 1s,
                     .ready_to_trip = trip::consecutive_failures(1), .clock = &clock});
  fail_n(cb, 1);
  clock.advance(1s);
  constexpr int kFibers = 64;
  std::atomic<int> admitted{0}, rejected{0};
  std::vector<std::optional<CircuitBreaker::Ticket>> held(kFibers);
  {
    WaitGroup wg;
    for (int i = 0; i < kFibers; ++i) {
      wg.go([&, i] {
        auto t = cb.allow();
        if (t) {
          ++admitted;
          held[static_cast<std::size_t>(i)].emplace(std::move(t.value()));
        } else {
          EXPECT_EQ(t.error(), errc::too_many_requests);
          ++rejected;
        }
      });
    }
    wg.wait();
  }
  EXPECT_EQ(admitted.load(), 4);
  EXPECT_EQ(rejected.load(), kFibers - 4);
  for (auto& t : held) {
    if (t) t->success();
  }
  EXPECT_EQ(cb.state(), BreakerState::closed);

  // Closed, with concurrent mixed outcomes: admitted == successes + failures + stale.
  std::atomic<int> calls{0};
  WaitGroup wg;
  for (int f = 0; f < 16; ++f) {
    wg.go([&, f] {
      for (int i = 0; i < 200; ++i) {
        ++calls;
        (void)cb.execute([&] { return (i + f) % 7 == 0 ? kFail : std::error_code{}; });
        if (i % 50 == 0) clock.advance(1s);
      }
    });
  }
  wg.wait();
  const BreakerStats st = cb.stats();
  EXPECT_EQ(st.admitted + st.rejected_open + st.rejected_half_open,
            static_cast<std::uint64_t>(calls.load() + kFibers + 1));
  EXPECT_EQ(st.admitted, st.successes + st.failures + st.excluded + st.stale);
}

}  // namespace
}  // namespace spindle::patterns
