// KeyedLimiter: independent buckets per key, lossless idle eviction (checked against a reference
// Limiter per key that is never evicted), memory bounded under a stream of distinct keys, the
// hard max_keys cap, and exact counts under concurrency.
#include <atomic>
#include <map>
#include <memory>
#include <string>

#include <spindle/patterns/keyed_limiter.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"
#include "support/scale.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(KeyedLimiter, KeysAreIndependent) {
  ManualClock clock;
  KeyedLimiter<std::string> lim({.limit = 1, .burst = 2, .clock = &clock});
  EXPECT_TRUE(lim.allow("a"));
  EXPECT_TRUE(lim.allow("a"));
  EXPECT_FALSE(lim.allow("a"));
  EXPECT_TRUE(lim.allow("b"));
  EXPECT_EQ(lim.size(), 2u);
  EXPECT_DOUBLE_EQ(lim.tokens_at("a", clock.now()), 0.0);
  EXPECT_DOUBLE_EQ(lim.tokens_at("zzz", clock.now()), 2.0);  // unknown: a full bucket
  clock.advance(1s);
  EXPECT_TRUE(lim.allow("a"));
  EXPECT_FALSE(lim.allow("a"));
  const KeyedLimiterStats st = lim.stats();
  EXPECT_EQ(st.allowed, 4u);
  EXPECT_EQ(st.rejected, 2u);
}

// Whatever the eviction does, every decision equals that of a limiter that never forgets.
FIBER_TEST(KeyedLimiter, IdleEvictionIsLossless) {
  ManualClock clock;
  KeyedLimiter<int> lim({.limit = 10, .burst = 3, .shards = 2, .clock = &clock});
  EXPECT_EQ(lim.idle_ttl(), 300ms + Duration(1));
  std::map<int, std::unique_ptr<Limiter>> ref;
  std::uint64_t x = 12345;
  int evictions_seen = 0;
  for (int step = 0; step < 20'000; ++step) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const int key = static_cast<int>((x >> 33) % 50);
    const int n = static_cast<int>((x >> 20) % 3);  // 0..2 tokens
    clock.advance(Duration(std::chrono::microseconds((x >> 40) % 20'000)));  // 0-20 ms
    auto& r = ref[key];
    if (!r) r = std::make_unique<Limiter>(10, 3, &clock);
    const bool want = r->allow_n(clock.now(), n);
    ASSERT_EQ(lim.allow_n(key, clock.now(), n), want) << "step " << step << " key " << key;
    if (step % 1000 == 999) evictions_seen += static_cast<int>(lim.evict_idle());
  }
  EXPECT_GT(lim.stats().evicted_idle, 100u);  // eviction really happened along the way
  (void)evictions_seen;
}

FIBER_TEST(KeyedLimiter, MemoryStaysBoundedUnderDistinctKeys) {
  ManualClock clock;
  KeyedLimiter<std::uint64_t> lim({.limit = 100, .burst = 10, .clock = &clock});  // ttl 100 ms
  const long kKeys = spindle::testing::scaled(1'000'000, 200'000, 50'000);
  std::size_t peak = 0;
  for (long i = 0; i < kKeys; ++i) {
    clock.advance(100us);  // 1,000 new keys per ttl
    ASSERT_TRUE(lim.allow(static_cast<std::uint64_t>(i)));
    if (lim.size() > peak) peak = lim.size();
  }
  // About ttl / 100us = 1,000 live keys; the amortised sweep keeps the rest at bay.
  EXPECT_LE(peak, 1'100u);
  EXPECT_GE(lim.stats().evicted_idle, static_cast<std::uint64_t>(kKeys) - 1'100);
  clock.advance(1s);
  const std::size_t left = lim.size();
  EXPECT_EQ(lim.evict_idle(), left);  // everything left is idle
  EXPECT_EQ(lim.size(), 0u);
}

FIBER_TEST(KeyedLimiter, MaxKeysIsAHardCap) {
  ManualClock clock;
  KeyedLimiter<int> lim({.limit = 1, .burst = 1, .max_keys = 64, .shards = 4, .clock = &clock});
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(lim.allow(i));  // nothing idle: the cap bites
  EXPECT_LE(lim.size(), 64u);
  EXPECT_EQ(lim.stats().evicted_capacity, 10'000u - lim.size());
  // The most recent key is kept, and limited.
  EXPECT_TRUE(lim.tracked(9'999));
  EXPECT_FALSE(lim.allow(9'999));
}

FIBER_TEST(KeyedLimiter, ConcurrentCallsCountExactly) {
  ManualClock clock;  // time stands still: each key allows exactly its burst
  KeyedLimiter<int> lim({.limit = 1, .burst = 5, .clock = &clock});
  std::atomic<int> allowed{0};
  WaitGroup wg;
  for (int f = 0; f < 16; ++f) {
    wg.go([&, f] {
      for (int i = 0; i < 200; ++i) {
        if (lim.allow((i + f) % 10)) ++allowed;
      }
    });
  }
  wg.wait();
  EXPECT_EQ(allowed.load(), 50);
  EXPECT_EQ(lim.size(), 10u);
  EXPECT_EQ(lim.stats().rejected, 16u * 200u - 50u);
}

FIBER_TEST(KeyedLimiter, InfAllowsEverythingAndTracksNothing) {
  KeyedLimiter<int> lim({.limit = kInf});
  for (int i = 0; i < 1000; ++i) EXPECT_TRUE(lim.allow(i));
  EXPECT_EQ(lim.size(), 0u);
}

FIBER_TEST(KeyedLimiter, BadSettingsThrow) {
  EXPECT_THROW(KeyedLimiter<int>({.limit = 0, .burst = 1}), ConfigError);
  EXPECT_THROW(KeyedLimiter<int>({.limit = -1, .burst = 1}), ConfigError);
  EXPECT_THROW(KeyedLimiter<int>({.limit = 1, .burst = 0}), ConfigError);
  EXPECT_THROW(KeyedLimiter<int>({.limit = 1, .burst = 1, .idle_ttl = -1s}), ConfigError);
  KeyedLimiter<int> lim({.limit = 1, .burst = 1});
  EXPECT_THROW((void)lim.allow_n(1, TimePoint{}, -1), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
