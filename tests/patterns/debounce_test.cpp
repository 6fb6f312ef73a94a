// Debouncer/Throttler on a ManualClock: the trailing edge fires once with the latest argument
// after the input settles; leading fires at once and not twice for a lone call; max_wait bounds
// the delay under a steady stream; throttle fires at most once per interval (lodash's timings);
// flush/cancel; invocations never overlap and keep order; re-entrant calls from fn are fine.
#include <atomic>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/patterns/debounce.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

struct Log {
  ManualClock& clock;
  TimePoint t0 = clock.now();
  std::vector<std::pair<int, long>> calls{};  // (argument, ms since t0)
  void operator()(int v) {
    calls.emplace_back(v, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - t0).count()));
  }
};

using Calls = std::vector<std::pair<int, long>>;

FIBER_TEST(Debounce, TrailingEdgeWithTheLatestArgument) {
  ManualClock clock;
  Log log{clock};
  Debouncer<int> d({.wait = 10ms, .clock = &clock}, [&](int v) { log(v); });
  d.call(1);
  d.call(2);
  clock.advance(9ms);
  EXPECT_TRUE(log.calls.empty());
  d.call(3);  // t=9: the window now ends at t=19
  clock.advance(9ms);
  EXPECT_TRUE(log.calls.empty());
  EXPECT_TRUE(d.pending());
  clock.advance(1ms);
  EXPECT_EQ(log.calls, (Calls{{3, 19}}));
  EXPECT_FALSE(d.pending());
  clock.advance(1h);
  EXPECT_EQ(log.calls.size(), 1u);
  EXPECT_EQ(clock.pending(), 0u);
  d.call(4);
  clock.advance(10ms);
  EXPECT_EQ(log.calls, (Calls{{3, 19}, {4, 3600029}}));
  EXPECT_EQ(d.stats().calls, 4u);
  EXPECT_EQ(d.stats().invocations, 2u);
}

FIBER_TEST(Debounce, TimerIsNotRearmedOnEveryCall) {
  ManualClock clock;
  int n = 0;
  Debouncer<> d({.wait = 10ms, .clock = &clock}, [&] { ++n; });
  for (int i = 0; i < 1000; ++i) {
    d.call();
    EXPECT_EQ(clock.pending(), 1u);
  }
  clock.advance(10ms);
  EXPECT_EQ(n, 1);
}

FIBER_TEST(Debounce, LeadingEdge) {
  ManualClock clock;
  Log log{clock};
  Debouncer<int> d({.wait = 10ms, .leading = true, .clock = &clock}, [&](int v) { log(v); });
  d.call(1);  // invoked at once
  EXPECT_EQ(log.calls, (Calls{{1, 0}}));
  clock.advance(10ms);
  EXPECT_EQ(log.calls.size(), 1u);  // a lone call is not invoked twice
  d.call(2);  // a new window: at once again
  clock.advance(5ms);
  d.call(3);
  clock.advance(10ms);  // window ends at t=25: trailing with 3
  EXPECT_EQ(log.calls, (Calls{{1, 0}, {2, 10}, {3, 25}}));

  Log only{clock};
  Debouncer<int> lead({.wait = 10ms, .leading = true, .trailing = false, .clock = &clock},
                      [&](int v) { only(v); });
  lead.call(1);
  clock.advance(5ms);
  lead.call(2);  // inside the window: dropped
  clock.advance(10ms);
  lead.call(3);
  EXPECT_EQ(only.calls, (Calls{{1, 0}, {3, 15}}));
}

FIBER_TEST(Debounce, MaxWaitBoundsTheDelay) {
  ManualClock clock;
  Log log{clock};
  Debouncer<int> d({.wait = 10ms, .max_wait = 25ms, .clock = &clock}, [&](int v) { log(v); });
  for (int t = 0; t < 60; t += 5) {  // a call every 5 ms, t = 0..55: never settles
    d.call(t);
    clock.advance(5ms);
  }
  clock.advance(100ms);
  // Every 25 ms while calls keep coming (with the latest argument: the timer fires before the
  // call made at the same instant), then the trailing edge 10 ms after the last call.
  EXPECT_EQ(log.calls, (Calls{{20, 25}, {45, 50}, {55, 65}}));
}

FIBER_TEST(Debounce, ThrottleFiresAtMostOncePerInterval) {
  ManualClock clock;
  Log log{clock};
  Throttler<int> th({.interval = 10ms, .clock = &clock}, [&](int v) { log(v); });
  for (int t = 0; t < 35; ++t) {  // a call every ms, t = 0..34
    th.call(t);
    clock.advance(1ms);
  }
  clock.advance(100ms);
  EXPECT_EQ(log.calls, (Calls{{0, 0}, {9, 10}, {19, 20}, {29, 30}, {34, 40}}));
  for (std::size_t i = 1; i < log.calls.size(); ++i) {
    EXPECT_GE(log.calls[i].second - log.calls[i - 1].second, 10);
  }
}

FIBER_TEST(Debounce, FlushAndCancel) {
  ManualClock clock;
  Log log{clock};
  Debouncer<int> d({.wait = 10ms, .clock = &clock}, [&](int v) { log(v); });
  d.call(1);
  d.flush();
  EXPECT_EQ(log.calls, (Calls{{1, 0}}));
  EXPECT_EQ(clock.pending(), 0u);
  d.flush();  // nothing pending: nothing happens
  d.call(2);
  d.cancel();
  clock.advance(1h);
  EXPECT_EQ(log.calls.size(), 1u);
  EXPECT_FALSE(d.pending());
}

FIBER_TEST(Debounce, ReentrantCallFromFn) {
  ManualClock clock;
  std::vector<int> seen;
  Debouncer<int>* self = nullptr;
  Debouncer<int> d({.wait = 10ms, .leading = true, .clock = &clock}, [&](int v) {
    seen.push_back(v);
    if (v < 3) self->call(v + 1);  // from inside fn: queued, not deadlocked
  });
  self = &d;
  d.call(1);
  clock.advance(10ms);
  clock.advance(10ms);
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3}));
}

FIBER_TEST(Debounce, ConcurrentCallersOneInvocation) {
  ManualClock clock;
  std::atomic<int> invocations{0}, last{-1};
  Debouncer<int> d({.wait = 10ms, .clock = &clock}, [&](int v) {
    ++invocations;
    last = v;
  });
  WaitGroup wg;
  for (int f = 0; f < 8; ++f) {
    wg.go([&, f] {
      for (int i = 0; i < 500; ++i) d.call(f * 1000 + i);
    });
  }
  wg.wait();
  clock.advance(10ms);
  EXPECT_EQ(invocations.load(), 1);
  EXPECT_EQ(last.load() % 1000, 499);  // some fiber's final call
  EXPECT_EQ(d.stats().calls, 4000u);
}

FIBER_TEST(Debounce, SystemClockTrailing) {
  Chan<int> got(4);
  {
    Debouncer<int> d({.wait = 2ms}, [&](int v) { got.send(v); });
    d.call(1);
    d.call(2);
    EXPECT_EQ(*got.recv(), 2);
  }
  EXPECT_FALSE(got.try_recv().ok());
  {
    Debouncer<int> d({.wait = 1h}, [&](int v) { got.send(v); });
    d.call(1);
  }  // destroyed with a call pending: never invoked, timer stopped
  EXPECT_FALSE(got.try_recv().ok());
}

FIBER_TEST(Debounce, BadSettingsThrow) {
  auto f = [](int) {};
  EXPECT_THROW(Debouncer<int>({.wait = 0s}, f), ConfigError);
  EXPECT_THROW(Debouncer<int>({.wait = -1s}, f), ConfigError);
  EXPECT_THROW(Debouncer<int>({.wait = 10ms, .max_wait = 5ms}, f), ConfigError);
  EXPECT_THROW(Debouncer<int>({.wait = 10ms, .leading = false, .trailing = false}, f), ConfigError);
  EXPECT_THROW(Throttler<int>({.interval = 0s}, f), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
