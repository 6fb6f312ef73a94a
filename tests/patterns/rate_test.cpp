// Limiter: golang.org/x/time/rate's rate_test.go cases (allow, reserve, cancel, jumps back in
// time, set_limit/set_burst), translated with the same times, plus wait() on a ManualClock:
// fail-fast checks, parking until the time to act, and cancellation returning tokens.
#include <atomic>
#include <vector>

#include <spindle/patterns/rate.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

constexpr Duration d = 100ms;

struct Times {
  ManualClock clock;
  TimePoint t0 = clock.now();
  TimePoint at(int k) const { return t0 + k * d; }
};

struct Allow {
  int k;  // time t_k
  int n;
  bool ok;
};

void run(Limiter& lim, const Times& t, std::initializer_list<Allow> steps) {
  int i = 0;
  for (const Allow& a : steps) {
    EXPECT_EQ(lim.allow_n(t.at(a.k), a.n), a.ok) << "step " << i << ": t" << a.k << " n=" << a.n;
    ++i;
  }
}

struct Req {
  int k;
  int n;
  int act;  // time to act t_act; -1 when not ok
  bool ok;
};

Reservation reserve(Limiter& lim, const Times& t, Req r) {
  Reservation res = lim.reserve_n(t.at(r.k), r.n);
  EXPECT_EQ(res.ok(), r.ok) << "reserve t" << r.k << " n=" << r.n;
  if (r.ok) {
    EXPECT_EQ(res.time_to_act(), t.at(r.act)) << "reserve t" << r.k << " n=" << r.n;
  } else {
    EXPECT_EQ(res.delay_from(t.at(r.k)), kInfDuration);
  }
  return res;
}

FIBER_TEST(RateLimiter, Every) {
  EXPECT_EQ(every(100ms), 10.0);
  EXPECT_EQ(every(0s), kInf);
  EXPECT_EQ(every(-1s), kInf);
  EXPECT_DOUBLE_EQ(every(2s), 0.5);
}

FIBER_TEST(RateLimiter, Burst1) {
  Times t;
  Limiter lim(10, 1, &t.clock);
  run(lim, t, {{0, 1, true}, {0, 1, false}, {0, 1, false}, {1, 1, true}, {1, 1, false},
               {1, 1, false}, {2, 2, false}, {2, 1, true}, {2, 1, false}});
}

FIBER_TEST(RateLimiter, Burst3) {
  Times t;
  Limiter lim(10, 3, &t.clock);
  run(lim, t, {{0, 2, true}, {0, 2, false}, {0, 1, true}, {0, 1, false}, {1, 4, false},
               {2, 1, true}, {3, 1, true}, {4, 1, true}, {4, 1, true}, {4, 1, false},
               {4, 1, false}, {9, 3, true}, {9, 0, true}});
}

FIBER_TEST(RateLimiter, JumpBackwards) {
  Times t;
  Limiter lim(10, 3, &t.clock);
  run(lim, t, {{1, 1, true}, {0, 1, true}, {0, 1, true}, {0, 1, false}, {0, 1, false},
               {1, 1, true}, {1, 1, false}, {1, 1, false}, {2, 1, true}, {2, 1, false},
               {2, 1, false}});
}

FIBER_TEST(RateLimiter, NoTruncationErrors) {
  // golang.org/issues/34861: tokensFromDuration must not truncate nanoseconds.
  ManualClock clock;
  Limiter lim(0.7692307692307693, 1, &clock);
  EXPECT_TRUE(lim.allow());
}

FIBER_TEST(RateLimiter, InfAndZero) {
  ManualClock clock;
  Limiter inf(kInf, 0, &clock);
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(inf.allow_n(clock.now(), 1'000'000));
  EXPECT_FALSE(inf.wait_n(background(), 1'000'000));
  Reservation r = inf.reserve_n(clock.now(), 5);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.delay(), Duration::zero());

  Limiter one(0, 1, &clock);  // a zero limit refills nothing: exactly one event
  EXPECT_TRUE(one.allow());
  clock.advance(24h);
  EXPECT_FALSE(one.allow());
  EXPECT_FALSE(one.reserve().ok());

  Limiter zero;  // Go's zero Limiter rejects everything
  EXPECT_FALSE(zero.allow());
  EXPECT_FALSE(zero.reserve().ok());
  EXPECT_EQ(zero.wait(background()), errc::exceeds_burst);
}

FIBER_TEST(RateLimiter, SimultaneousRequests) {
  ManualClock clock;
  Limiter lim(1, 5, &clock);
  std::atomic<int> ok{0};
  WaitGroup wg;
  for (int i = 0; i < 64; ++i) {
    wg.go([&] {
      if (lim.allow()) ++ok;
    });
  }
  wg.wait();
  EXPECT_EQ(ok.load(), 5);
}

FIBER_TEST(RateLimiter, SimpleReserve) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  (void)reserve(lim, t, {0, 2, 2, true});
  (void)reserve(lim, t, {3, 2, 4, true});
}

FIBER_TEST(RateLimiter, Mix) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 3, -1, false});  // n > burst
  (void)reserve(lim, t, {0, 2, 0, true});
  run(lim, t, {{1, 2, false}});  // not enough tokens
  (void)reserve(lim, t, {1, 2, 2, true});
  run(lim, t, {{1, 1, false}});  // negative tokens
  run(lim, t, {{3, 1, true}});
}

FIBER_TEST(RateLimiter, CancelInvalid) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 3, -1, false});
  r.cancel_at(t.at(0));  // no effect
  (void)reserve(lim, t, {0, 2, 2, true});
}

FIBER_TEST(RateLimiter, CancelLast) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 2, 2, true});
  r.cancel_at(t.at(1));  // 2 tokens back
  (void)reserve(lim, t, {1, 2, 2, true});
}

FIBER_TEST(RateLimiter, CancelTooLate) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 2, 2, true});
  r.cancel_at(t.at(3));  // too late: no effect
  (void)reserve(lim, t, {3, 2, 4, true});
}

FIBER_TEST(RateLimiter, Cancel0Tokens) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 1, 1, true});
  (void)reserve(lim, t, {0, 1, 2, true});
  r.cancel_at(t.at(0));  // 0 tokens back: a later reservation holds them
  (void)reserve(lim, t, {0, 1, 3, true});
}

FIBER_TEST(RateLimiter, Cancel1Token) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 2, 2, true});
  (void)reserve(lim, t, {0, 1, 3, true});
  r.cancel_at(t.at(2));  // 1 token back
  (void)reserve(lim, t, {2, 2, 4, true});
}

FIBER_TEST(RateLimiter, CancelMulti) {
  Times t;
  Limiter lim(10, 4, &t.clock);
  (void)reserve(lim, t, {0, 4, 0, true});
  Reservation a = reserve(lim, t, {0, 3, 3, true});
  (void)reserve(lim, t, {0, 1, 4, true});
  Reservation c = reserve(lim, t, {0, 1, 5, true});
  c.cancel_at(t.at(1));  // 1 token back
  a.cancel_at(t.at(1));  // 2 tokens back, as if c was never reserved
  (void)reserve(lim, t, {1, 3, 5, true});
}

FIBER_TEST(RateLimiter, CancelTwiceRestoresOnce) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 2, 2, true});
  r.cancel_at(t.at(1));
  r.cancel_at(t.at(1));
  EXPECT_DOUBLE_EQ(lim.tokens_at(t.at(1)), 1.0);
}

FIBER_TEST(RateLimiter, ReserveJumpBack) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {1, 2, 1, true});  // start at t1
  (void)reserve(lim, t, {0, 1, 1, true});  // should violate Limit,Burst
  (void)reserve(lim, t, {2, 2, 3, true});
  (void)reserve(lim, t, {0, 3, -1, false});  // n > burst: no state change
  (void)reserve(lim, t, {2, 1, 4, true});
}

FIBER_TEST(RateLimiter, ReserveJumpBackCancel) {
  Times t;
  Limiter lim(10, 2, &t.clock);
  (void)reserve(lim, t, {1, 2, 1, true});
  Reservation r = reserve(lim, t, {1, 2, 3, true});
  (void)reserve(lim, t, {1, 1, 4, true});
  r.cancel_at(t.at(0));  // cancel at t0: 1 token back
  (void)reserve(lim, t, {1, 2, 4, true});
}

FIBER_TEST(RateLimiter, ReserveSetLimit) {
  Times t;
  Limiter lim(5, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  (void)reserve(lim, t, {0, 2, 4, true});
  lim.set_limit_at(t.at(2), 10);
  (void)reserve(lim, t, {2, 1, 4, true});
  EXPECT_EQ(lim.limit(), 10.0);
}

FIBER_TEST(RateLimiter, ReserveSetBurst) {
  Times t;
  Limiter lim(5, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  (void)reserve(lim, t, {0, 2, 4, true});
  lim.set_burst_at(t.at(3), 4);
  (void)reserve(lim, t, {0, 4, 9, true});
  EXPECT_EQ(lim.burst(), 4);
}

FIBER_TEST(RateLimiter, ReserveSetLimitCancel) {
  Times t;
  Limiter lim(5, 2, &t.clock);
  (void)reserve(lim, t, {0, 2, 0, true});
  Reservation r = reserve(lim, t, {0, 2, 4, true});
  lim.set_limit_at(t.at(2), 10);
  r.cancel_at(t.at(2));  // 2 tokens back
  (void)reserve(lim, t, {2, 2, 3, true});
}

FIBER_TEST(RateLimiter, SetBurstZeroStopsEverything) {
  ManualClock clock;
  Limiter lim(10, 5, &clock);
  lim.set_burst(0);
  EXPECT_FALSE(lim.allow());
  clock.advance(1h);
  EXPECT_FALSE(lim.allow());
  lim.set_burst(1);
  clock.advance(1s);
  EXPECT_TRUE(lim.allow());
}

FIBER_TEST(RateLimiter, MisuseThrows) {
  ManualClock clock;
  EXPECT_THROW(Limiter(-1, 1, &clock), ConfigError);
  EXPECT_THROW(Limiter(std::nan(""), 1, &clock), ConfigError);
  EXPECT_THROW(Limiter(10, -1, &clock), ConfigError);
  EXPECT_THROW(Limiter(10, 0, &clock), ConfigError);
  EXPECT_NO_THROW(Limiter(kInf, 0, &clock));
  Limiter lim(10, 1, &clock);
  EXPECT_THROW((void)lim.allow_n(clock.now(), -1), ConfigError);
  EXPECT_THROW((void)lim.reserve_n(clock.now(), -1), ConfigError);
  EXPECT_THROW((void)lim.wait_n(background(), -1), ConfigError);
  EXPECT_THROW(lim.set_burst(-1), ConfigError);
  EXPECT_THROW(lim.set_limit(-1), ConfigError);
}

FIBER_TEST(RateLimiter, WaitFailsFast) {
  ManualClock clock;
  Limiter lim(1, 2, &clock);
  EXPECT_EQ(lim.wait_n(background(), 3), errc::exceeds_burst);
  auto [done, cancel] = with_cancel(background());
  cancel();
  EXPECT_EQ(lim.wait(done), spindle::errc::canceled);  // even with tokens available
  EXPECT_DOUBLE_EQ(lim.tokens(), 2.0);
  ASSERT_TRUE(lim.allow_n(clock.now(), 2));
  // The next token is 1 s of clock time away; the context has ~1 h of real time: fine. With
  // 10 ms left it would exceed the deadline: rejected at once, nothing reserved.
  auto [soon, c2] = with_timeout(background(), 10ms);
  EXPECT_EQ(lim.wait(soon), errc::would_exceed_deadline);
  EXPECT_DOUBLE_EQ(lim.tokens(), 0.0);
  EXPECT_EQ(make_error_code(errc::would_exceed_deadline).message(),
            "rate: Wait(n) would exceed context deadline");
  EXPECT_EQ(clock.pending(), 0u);
}

FIBER_TEST(RateLimiter, WaitParksUntilTheClockSaysSo) {
  ManualClock clock;
  Limiter lim(10, 1, &clock);  // one token per 100 ms
  constexpr int kWaiters = 10;
  std::atomic<int> done{0};
  WaitGroup wg;
  auto [ctx, cancel] = with_timeout(background(), 1h);
  for (int i = 0; i < kWaiters; ++i) {
    wg.go([&, ctx = ctx] {
      EXPECT_FALSE(lim.wait(ctx));
      ++done;
    });
  }
  // One waiter takes the initial token at once; the other nine park on clock timers.
  clock.block_until_pending(kWaiters - 1);
  EXPECT_EQ(done.load(), 1);
  EXPECT_NEAR(lim.tokens(), -(kWaiters - 1), 1e-9);
  clock.advance(900ms);  // every time to act has come
  wg.wait();
  EXPECT_EQ(done.load(), kWaiters);
  EXPECT_NEAR(lim.tokens(), 0.0, 1e-9);
}

FIBER_TEST(RateLimiter, CancelledWaitReturnsItsTokens) {
  ManualClock clock;
  Limiter lim(1, 1, &clock);
  ASSERT_TRUE(lim.allow());
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg;
  std::error_code got;
  wg.go([&, ctx = ctx] { got = lim.wait(ctx); });
  clock.block_until_pending(1);
  EXPECT_DOUBLE_EQ(lim.tokens(), -1.0);
  cancel();
  wg.wait();
  EXPECT_EQ(got, spindle::errc::canceled);
  EXPECT_DOUBLE_EQ(lim.tokens(), 0.0);  // the reservation was given back
  EXPECT_EQ(clock.pending(), 0u);
  clock.advance(1s);
  EXPECT_TRUE(lim.allow());
}

FIBER_TEST(RateLimiter, SystemClockWait) {
  Limiter lim(kInf, 0);
  EXPECT_FALSE(lim.wait(background()));
  Limiter fast(1000, 1);  // 1 ms per token on the real clock: a short real park
  EXPECT_FALSE(fast.wait(background()));
  EXPECT_FALSE(fast.wait(background()));
}

}  // namespace
}  // namespace spindle::patterns
