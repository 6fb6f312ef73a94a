// Context overloads of the sync primitives: WaitGroup::wait(ctx), Semaphore::acquire(ctx, n),
// Mutex::lock(ctx), Cond::wait(lock, ctx). Each: fails at once on a done context, wakes promptly
// on cancel and on the deadline, and, racing cancellation against completion thousands of
// times, never both succeeds and reports the error (exact accounting of tokens, locks, signals).
#include <atomic>
#include <mutex>

#include <spindle/cond.hpp>
#include <spindle/context.hpp>
#include <spindle/mutex.hpp>
#include <spindle/semaphore.hpp>
#include <spindle/waitgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::deadline_exceeded;
using spindle::testing::eventually;

namespace spindle {
namespace {

FIBER_TEST(SyncCtx, WaitGroupWait) {
  WaitGroup wg;
  EXPECT_FALSE(wg.wait(background()));  // counter zero
  wg.add(1);
  {
    auto [ctx, cancel] = with_timeout(background(), 2ms);
    EXPECT_EQ(wg.wait(ctx), deadline_exceeded());
  }
  {
    auto [ctx, cancel] = with_cancel(background());
    cancel();
    EXPECT_EQ(wg.wait(ctx), canceled());
  }
  {
    auto [ctx, cancel] = with_cancel(background());
    WaitGroup outer;
    std::error_code got;
    outer.go([&, ctx = ctx] { got = wg.wait(ctx); });
    ASSERT_TRUE(eventually([&] { return detail::context_waiter_count(ctx) == 1; }));
    cancel();
    outer.wait();
    EXPECT_EQ(got, canceled());
    EXPECT_EQ(detail::context_waiter_count(ctx), 0u);
  }
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup outer;
  std::error_code got = canceled();
  outer.go([&, ctx = ctx] { got = wg.wait(ctx); });
  wg.done();
  outer.wait();
  EXPECT_FALSE(got);
}

FIBER_TEST(SyncCtx, WaitGroupRacesCancel) {
  constexpr int kRounds = 3000;
  int ok = 0, failed = 0;
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_cancel(background());
    WaitGroup wg, helpers;
    wg.add(1);
    helpers.go([&] { wg.done(); });
    helpers.go([&r] { r.cancel(); });
    const std::error_code ec = wg.wait(r.ctx);
    if (!ec) {
      ++ok;
    } else {
      EXPECT_EQ(ec, canceled());
      ++failed;
    }
    helpers.wait();
    EXPECT_EQ(detail::context_waiter_count(r.ctx), 0u);
  }
  EXPECT_EQ(ok + failed, kRounds);
}

FIBER_TEST(SyncCtx, SemaphoreAcquire) {
  Semaphore sem(2);
  EXPECT_FALSE(sem.acquire(background(), 2));
  {
    auto [ctx, cancel] = with_timeout(background(), 2ms);
    EXPECT_EQ(sem.acquire(ctx, 1), deadline_exceeded());
  }
  {
    // Larger than the size: waits for the context (x/sync), then fails holding nothing.
    auto [ctx, cancel] = with_timeout(background(), 1ms);
    EXPECT_EQ(sem.acquire(ctx, 3), deadline_exceeded());
  }
  sem.release(2);
  auto [ctx, cancel] = with_cancel(background());
  cancel();
  EXPECT_EQ(sem.acquire(ctx, 1), canceled());  // a done context fails even with tokens free
  EXPECT_TRUE(sem.try_acquire(2));              // and took none
  sem.release(2);
}

// Acquirers racing cancellation and releases: every token is accounted for.
FIBER_TEST(SyncCtx, SemaphoreRacesCancel) {
  constexpr int kRounds = 2000, kFibers = 4;
  Semaphore sem(2);
  std::atomic<int> got{0}, gave_up{0};
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_cancel(background());
    ASSERT_FALSE(sem.acquire(background(), 2));  // all held: the acquirers must park
    WaitGroup wg;
    for (int f = 0; f < kFibers; ++f) {
      wg.go([&, ctx = r.ctx] {
        if (sem.acquire(ctx, 1)) {
          ++gave_up;
        } else {
          ++got;
          sem.release(1);
        }
      });
    }
    wg.go([&] { sem.release(2); });
    wg.go([&r] { r.cancel(); });
    wg.wait();
    EXPECT_TRUE(sem.try_acquire(2)) << "a token leaked in round " << i;
    sem.release(2);
  }
  EXPECT_EQ(got.load() + gave_up.load(), kRounds * kFibers);
}

FIBER_TEST(SyncCtx, MutexLock) {
  Mutex mu;
  EXPECT_FALSE(mu.lock(background()));
  {
    auto [ctx, cancel] = with_timeout(background(), 2ms);
    EXPECT_EQ(mu.lock(ctx), deadline_exceeded());  // held by us
  }
  mu.unlock();
  auto [ctx, cancel] = with_cancel(background());
  cancel();
  EXPECT_EQ(mu.lock(ctx), canceled());
  EXPECT_TRUE(mu.try_lock());  // not taken by the failed lock
  mu.unlock();
}

// Lockers racing cancellation: whoever reports success holds the lock (the counter is exact),
// whoever reports the error does not (the mutex ends unlocked).
FIBER_TEST(SyncCtx, MutexRacesCancel) {
  constexpr int kRounds = 2000, kFibers = 4;
  Mutex mu;
  long counter = 0;
  int locked = 0;
  std::atomic<int> failed{0};
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext r = with_cancel(background());
    mu.lock();
    WaitGroup wg;
    for (int f = 0; f < kFibers; ++f) {
      wg.go([&, ctx = r.ctx] {
        if (mu.lock(ctx)) {
          ++failed;
          return;
        }
        ++counter;  // under the lock
        ++locked;
        mu.unlock();
      });
    }
    wg.go([&] { mu.unlock(); });
    wg.go([&r] { r.cancel(); });
    wg.wait();
    ASSERT_TRUE(mu.try_lock()) << "round " << i;
    mu.unlock();
  }
  EXPECT_EQ(counter, locked);
  EXPECT_EQ(locked + failed.load(), kRounds * kFibers);
}

FIBER_TEST(SyncCtx, CondWait) {
  Mutex mu;
  Cond cond;
  bool ready = false;
  {
    auto [ctx, cancel] = with_timeout(background(), 2ms);
    std::unique_lock lock(mu);
    EXPECT_EQ(cond.wait(lock, ctx), deadline_exceeded());
    EXPECT_TRUE(lock.owns_lock());
    EXPECT_EQ(cond.wait(lock, ctx, [&] { return ready; }), deadline_exceeded());
  }
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg;
  std::error_code got = canceled();
  wg.go([&, ctx = ctx] {
    std::unique_lock lock(mu);
    got = cond.wait(lock, ctx, [&] { return ready; });
  });
  {
    std::lock_guard lock(mu);
    ready = true;
  }
  cond.broadcast();
  wg.wait();
  EXPECT_FALSE(got);
}

// Waiters racing cancellation and signals: a signal is never swallowed by a waiter that
// reports cancellation; each signal wakes exactly one waiter that reports success.
FIBER_TEST(SyncCtx, CondRacesCancel) {
  constexpr int kRounds = 1000;
  Mutex mu;
  Cond cond;
  int signalled_total = 0;
  for (int i = 0; i < kRounds; ++i) {
    CancelableContext victim = with_cancel(background());
    int waiting = 0, signalled = 0, cancelled = 0;
    WaitGroup wg;
    // One waiter on a context that gets cancelled, one on a context that does not.
    for (int f = 0; f < 2; ++f) {
      wg.go([&, ctx = f == 0 ? victim.ctx : background()] {
        std::unique_lock lock(mu);
        ++waiting;
        if (cond.wait(lock, ctx)) {
          ++cancelled;
        } else {
          ++signalled;
        }
      });
    }
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lock(mu);
      return waiting == 2;
    }));
    wg.go([&victim] { victim.cancel(); });
    cond.signal();  // must reach a waiter that reports success
    ASSERT_TRUE(eventually([&] {
      std::lock_guard lock(mu);
      return signalled == 1;  // the one signal reached a waiter that reports it
    })) << "round " << i;
    // Release whoever is left: the background waiter if the victim took the signal first.
    for (;;) {
      {
        std::lock_guard lock(mu);
        if (signalled + cancelled == 2) break;
      }
      cond.broadcast();
      this_fiber::yield();
    }
    wg.wait();
    signalled_total += signalled;
  }
  EXPECT_GE(signalled_total, kRounds);
}

}  // namespace
}  // namespace spindle
