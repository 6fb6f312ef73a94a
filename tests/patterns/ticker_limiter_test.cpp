// TickerLimiter: the seed's ticker-fed token channel, on a ManualClock: starts full, refills one
// token per period on a fixed schedule (catching up after a late wake-up, capped at the burst),
// waits park until a token arrives, stop() fails waiters and ends the refill fiber.
#include <atomic>

#include <spindle/chan.hpp>

#include <spindle/patterns/ticker_limiter.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(TickerLimiter, StartsFullAndRefillsOnSchedule) {
  ManualClock clock;
  TickerLimiter lim(10ms, 3, &clock);
  clock.block_until_pending(1);  // the refill fiber armed its first tick
  EXPECT_EQ(lim.available(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(lim.try_acquire());
  EXPECT_FALSE(lim.try_acquire());
  clock.advance(10ms);
  clock.block_until_pending(1);  // the tick was handled and the next one armed
  EXPECT_EQ(lim.available(), 1u);
  clock.advance(25ms);  // 2 more periods elapsed (t=20, t=30): two tokens, schedule kept
  clock.block_until_pending(1);
  EXPECT_EQ(lim.available(), 3u);
  clock.advance(5ms);   // t=40: the fixed schedule fires here, not at t=45; but the bucket is full
  clock.block_until_pending(1);
  EXPECT_EQ(lim.available(), 3u);
  clock.advance(1h);    // far more ticks than room: capped at the burst
  clock.block_until_pending(1);
  EXPECT_EQ(lim.available(), 3u);
}

FIBER_TEST(TickerLimiter, WaitersAreServedExactlyOneTokenEach) {
  ManualClock clock;
  TickerLimiter lim(1ms, 2, &clock);
  constexpr int kWaiters = 40;
  Chan<int> served(kWaiters);
  WaitGroup wg;
  for (int i = 0; i < kWaiters; ++i) {
    wg.go([&] {
      EXPECT_FALSE(lim.wait(background()));
      served.send(1);
    });
  }
  // Two tokens were there at the start; after that, exactly one per period.
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(served.recv().has_value());
  for (int i = 2; i < kWaiters; ++i) {
    clock.block_until_pending(1);
    clock.advance(1ms);
    ASSERT_TRUE(served.recv().has_value());
  }
  wg.wait();
  EXPECT_FALSE(served.try_recv().ok());  // nobody was served twice or without a token
  EXPECT_EQ(lim.available(), 0u);
}

FIBER_TEST(TickerLimiter, ContextAndStop) {
  ManualClock clock;
  TickerLimiter lim(1s, 1, &clock);
  EXPECT_FALSE(lim.wait());
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg;
  std::error_code a, b;
  wg.go([&, ctx = ctx] { a = lim.wait(ctx); });
  cancel();
  wg.wait();
  EXPECT_EQ(a, spindle::errc::canceled);

  wg.go([&] { b = lim.wait(); });
  lim.stop();
  wg.wait();
  EXPECT_EQ(b, errc::limiter_stopped);
  EXPECT_EQ(lim.wait(), errc::limiter_stopped);
  EXPECT_FALSE(lim.try_acquire());
  lim.stop();  // idempotent
}

FIBER_TEST(TickerLimiter, SystemClock) {
  TickerLimiter lim(1ms, 1);
  EXPECT_FALSE(lim.wait());
  EXPECT_FALSE(lim.wait());  // a real refill, 1 ms later
}

FIBER_TEST(TickerLimiter, BadArgumentsThrow) {
  EXPECT_THROW(TickerLimiter(0s, 1), ConfigError);
  EXPECT_THROW(TickerLimiter(-1s, 1), ConfigError);
  EXPECT_THROW(TickerLimiter(1s, 0), ConfigError);
  EXPECT_THROW(TickerLimiter(1s, -3), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
