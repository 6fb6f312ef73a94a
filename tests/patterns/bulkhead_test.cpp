// Bulkhead: compartments admit at most `capacity` at once (counted exactly under concurrency),
// reject at once when full or wait FIFO with a context or a clock timeout, keep exact metrics,
// and reject bad configuration.
#include <atomic>
#include <string>

#include <spindle/chan.hpp>
#include <spindle/patterns/bulkhead.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(Bulkhead, RejectsWhenFullAndReleasesOnce) {
  Compartment c("db", 2);
  auto a = c.try_acquire();
  auto b = c.try_acquire();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(c.try_acquire().error(), errc::bulkhead_full);
  a->release();
  a->release();  // once only
  EXPECT_FALSE(a->held());
  auto c3 = c.try_acquire();
  EXPECT_TRUE(c3.ok());
  EXPECT_EQ(c.try_acquire().error(), errc::bulkhead_full);
  const CompartmentMetrics m = c.metrics();
  EXPECT_EQ(m.name, "db");
  EXPECT_EQ(m.capacity, 2);
  EXPECT_EQ(m.in_use, 2);
  EXPECT_EQ(m.admitted, 3u);
  EXPECT_EQ(m.rejected, 2u);
  EXPECT_EQ(m.peak_in_use, 2);
}

FIBER_TEST(Bulkhead, WaitsWithContext) {
  Compartment c("svc", 1);
  auto held = c.try_acquire();
  ASSERT_TRUE(held.ok());
  auto [ctx, cancel] = with_cancel(background());
  Chan<std::error_code> got(2);
  WaitGroup wg;
  wg.go([&, ctx = ctx] {
    auto p = c.acquire(ctx);
    got.send(p.ok() ? std::error_code{} : p.error());
  });
  wg.go([&] {
    auto p = c.acquire(background());  // waits until the held permit is released
    got.send(p.ok() ? std::error_code{} : p.error());
  });
  // Both queue behind the holder; cancel the first, then release the permit to the second.
  while (c.metrics().waiting < 2) this_fiber::yield();
  cancel();
  EXPECT_EQ(*got.recv(), spindle::errc::canceled);
  held->release();
  EXPECT_FALSE(*got.recv());
  wg.wait();
  const CompartmentMetrics m = c.metrics();
  EXPECT_EQ(m.canceled, 1u);
  EXPECT_EQ(m.waiting, 0);
  EXPECT_EQ(m.in_use, 0);
  // A done context fails at once even with room.
  EXPECT_EQ(c.acquire(ctx).error(), spindle::errc::canceled);
}

FIBER_TEST(Bulkhead, AcquireForTimesOutOnTheClock) {
  ManualClock clock;
  Compartment c("slow", 1, &clock);
  auto held = c.try_acquire();
  Chan<std::error_code> got(1);
  WaitGroup wg;
  wg.go([&] {
    auto p = c.acquire_for(5s);
    got.send(p.ok() ? std::error_code{} : p.error());
  });
  clock.block_until_pending(1);
  clock.advance(4s);
  EXPECT_FALSE(got.try_recv().ok());
  clock.advance(1s);
  EXPECT_EQ(*got.recv(), spindle::errc::deadline_exceeded);
  wg.wait();
  EXPECT_EQ(c.metrics().timed_out, 1u);
  EXPECT_EQ(clock.pending(), 0u);
}

FIBER_TEST(Bulkhead, NamedCompartmentsAndExecute) {
  Bulkhead bh;
  bh.add("payments", 1);
  bh.add("search", 3);
  EXPECT_THROW(bh.add("payments", 5), ConfigError);
  EXPECT_THROW(bh.add("x", 0), ConfigError);
  EXPECT_THROW(bh.add("y", -1), ConfigError);
  EXPECT_EQ(bh.find("x"), nullptr);
  EXPECT_EQ(bh.execute("nope", [] {}), errc::unknown_compartment);
  EXPECT_EQ(bh.execute(background(), "nope", [] { return 1; }).error(), errc::unknown_compartment);
  int ran = 0;
  EXPECT_FALSE(bh.execute("payments", [&] { ++ran; }));
  Result<int> r = bh.execute("search", [&] { return 7; });
  EXPECT_EQ(*r, 7);
  // Nested: the payments slot is taken while the inner call runs.
  std::error_code inner;
  EXPECT_FALSE(bh.execute("payments", [&] { inner = bh.execute("payments", [&] { ++ran; }); }));
  EXPECT_EQ(inner, errc::bulkhead_full);
  EXPECT_EQ(ran, 1);
  EXPECT_THROW(bh.execute("payments", []() -> std::error_code { throw std::runtime_error("x"); }),
               std::runtime_error);
  EXPECT_EQ(bh.find("payments")->metrics().in_use, 0);  // released during unwinding
  const auto all = bh.metrics();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "payments");
  EXPECT_EQ(all[0].admitted, 3u);
  EXPECT_EQ(all[0].rejected, 1u);
  EXPECT_EQ(all[1].name, "search");
  EXPECT_EQ(make_error_code(errc::bulkhead_full).message(), "bulkhead is full");
}

FIBER_TEST(Bulkhead, ConcurrencyNeverExceedsCapacity) {
  Bulkhead bh;
  Compartment& c = bh.add("work", 3);
  std::atomic<int> inside{0}, max_inside{0}, done{0}, rejected{0};
  WaitGroup wg;
  constexpr int kFibers = 32, kCalls = 50;
  for (int f = 0; f < kFibers; ++f) {
    wg.go([&, f] {
      for (int i = 0; i < kCalls; ++i) {
        auto body = [&] {
          const int now = ++inside;
          int m = max_inside.load();
          while (now > m && !max_inside.compare_exchange_weak(m, now)) {
          }
          this_fiber::yield();
          --inside;
          ++done;
        };
        if ((f + i) % 2 == 0) {
          EXPECT_FALSE(bh.execute(background(), "work", body));
        } else if (bh.execute("work", body) == errc::bulkhead_full) {
          ++rejected;
        }
      }
    });
  }
  wg.wait();
  EXPECT_LE(max_inside.load(), 3);
  EXPECT_EQ(done.load() + rejected.load(), kFibers * kCalls);
  const CompartmentMetrics m = c.metrics();
  EXPECT_EQ(m.admitted, static_cast<std::uint64_t>(done.load()));
  EXPECT_EQ(m.rejected, static_cast<std::uint64_t>(rejected.load()));
  EXPECT_EQ(m.in_use, 0);
  EXPECT_LE(m.peak_in_use, 3);
}

}  // namespace
}  // namespace spindle::patterns
