// park/ready: the wake-up races every blocking primitive relies on.
#include <atomic>
#include <thread>
#include <vector>

#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>

#include "runtime/park_latch.hpp"
#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using detail::ParkOptions;
using detail::SpinLock;
using detail::WaitReason;
using detail::Waiter;
using detail::WakeReason;

constexpr int kRounds = static_cast<int>(testing::scaled(20'000, 2'000, 2'000));

// A slot through which one fiber publishes its Waiter to a waker on another thread.
struct Mailbox {
  std::atomic<Waiter*> waiter{nullptr};
};

FIBER_TEST(Park, WokenFromAnotherThreadResumesExactlyOnce) {
  std::atomic<int> resumed{0};
  for (int round = 0; round < kRounds / 10; ++round) {
    Mailbox box;
    std::thread waker([&] {
      Waiter* w;
      while ((w = box.waiter.load(std::memory_order_acquire)) == nullptr) std::this_thread::yield();
      EXPECT_TRUE(w->wake());
    });
    Waiter w;
    box.waiter.store(&w, std::memory_order_release);
    EXPECT_EQ(detail::park(w, {WaitReason::other}), WakeReason::notified);
    resumed.fetch_add(1);
    waker.join();
  }
  EXPECT_EQ(resumed.load(), kRounds / 10);
}

FIBER_TEST(Park, WakeBeforeParkIsNotLost) {
  // The waker may run before the fiber has switched away: ready() must then requeue it.
  for (int round = 0; round < kRounds; ++round) {
    Waiter w;
    std::atomic<bool> go_now{false};
    testing::ParkLatch waker_done(1);
    go([&] {
      while (!go_now.load(std::memory_order_acquire)) this_fiber::yield();
      w.wake();
      waker_done.count_down();
    });
    go_now.store(true, std::memory_order_release);
    EXPECT_EQ(detail::park(w, {WaitReason::other}), WakeReason::notified);
    waker_done.wait();
  }
}

FIBER_TEST(Park, RacingWakersClaimExactlyOnce) {
  for (int round = 0; round < kRounds / 4; ++round) {
    Waiter w;
    std::atomic<int> claims{0};
    testing::ParkLatch wakers(3);
    for (int k = 0; k < 3; ++k) {
      go([&, k] {
        if (w.wake(k == 0 ? WakeReason::notified : WakeReason::canceled)) claims.fetch_add(1);
        wakers.count_down();
      });
    }
    const WakeReason why = detail::park(w, {WaitReason::other});
    EXPECT_NE(why, WakeReason::none);
    wakers.wait();
    EXPECT_EQ(claims.load(), 1);
  }
}

FIBER_TEST(Park, UnlockRunsAfterTheFiberIsSuspended) {
  // The waker takes the lock the parking fiber held: it must never find the fiber still on its
  // stack (ready() would then see it running; the test counts resumptions instead of crashing).
  SpinLock mu;
  std::atomic<int> resumed{0};
  for (int round = 0; round < kRounds; ++round) {
    Waiter w;
    Waiter* published = nullptr;
    testing::ParkLatch waker_done(1);
    go([&] {
      for (;;) {
        mu.lock();
        if (published != nullptr) {
          EXPECT_TRUE(published->wake());
          published = nullptr;
          mu.unlock();
          break;
        }
        mu.unlock();
        this_fiber::yield();
      }
      waker_done.count_down();
    });
    mu.lock();
    published = &w;
    (void)detail::park(w, {WaitReason::other}, {.unlock = SpinLock::unlock_fn, .unlock_arg = &mu});
    resumed.fetch_add(1);
    waker_done.wait();
  }
  EXPECT_EQ(resumed.load(), kRounds);
}

FIBER_TEST(Park, DeadlineEndsTheWaitUnlessWokenFirst) {
  Waiter timed_out;
  EXPECT_EQ(detail::park(timed_out, {WaitReason::other},
                         {.deadline = Clock::now() + std::chrono::milliseconds(2)}),
            WakeReason::timeout);
  // Past deadline: returns at once, still calling unlock.
  SpinLock mu;
  mu.lock();
  Waiter past;
  EXPECT_EQ(detail::park(past, {WaitReason::other},
                         {.unlock = SpinLock::unlock_fn, .unlock_arg = &mu, .deadline = Clock::now()}),
            WakeReason::timeout);
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  // Woken well before the deadline.
  Waiter woken;
  go([&] { woken.wake(); });
  EXPECT_EQ(detail::park(woken, {WaitReason::other}, {.deadline = Clock::now() + std::chrono::hours(1)}),
            WakeReason::notified);
}

FIBER_TEST(Park, TimeoutRacingWakeHasOneOutcome) {
  int notified = 0, timeouts = 0;
  for (int round = 0; round < kRounds / 10; ++round) {
    Waiter w;
    testing::ParkLatch waker_done(1);
    std::atomic<bool> woke{false};
    go([&] {
      woke.store(w.wake(), std::memory_order_relaxed);
      waker_done.count_down();
    });
    const WakeReason why =
        detail::park(w, {WaitReason::other}, {.deadline = Clock::now() + std::chrono::microseconds(round % 50)});
    waker_done.wait();
    if (why == WakeReason::notified) {
      ++notified;
      EXPECT_TRUE(woke.load());
    } else {
      ASSERT_EQ(why, WakeReason::timeout);
      ++timeouts;
      EXPECT_FALSE(woke.load());
    }
  }
  EXPECT_EQ(notified + timeouts, kRounds / 10);
}

TEST(ParkThread, PlainThreadsParkOnAFutex) {
  // Outside the runtime a Waiter blocks the thread; a fiber inside the runtime wakes it.
  Waiter w;
  std::thread runtime([&] {
    run([&] {
      testing::ParkLatch done(1);
      go([&] {
        w.wake();
        done.count_down();
      });
      done.wait();
    });
  });
  EXPECT_EQ(detail::park(w, {WaitReason::other}), WakeReason::notified);
  runtime.join();
  Waiter t;
  EXPECT_EQ(detail::park(t, {WaitReason::other}, {.deadline = Clock::now() + std::chrono::milliseconds(1)}),
            WakeReason::timeout);
}

}  // namespace
}  // namespace spindle
