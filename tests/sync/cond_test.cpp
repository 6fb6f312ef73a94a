// Cond: signal and broadcast wake exactly who they should, no lost wake-up between enqueue and
// unlock, timed waits, and a timed-out waiter never swallows a signal.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <spindle/cond.hpp>
#include <spindle/mutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"
#include "support/polling.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using testing::force_migration;
using testing::race_rounds;
using testing::yield_until;

constexpr bool kSanitized = testing::kAsan || testing::kTsan;

FIBER_TEST(Cond, SignalHandsOutTicketsExactly) {
  // A producer hands out kTickets one at a time with signal(); each consumer takes what it finds.
  Mutex mu;
  Cond cond;
  int tickets = 0;
  int taken = 0;
  bool closed = false;
  constexpr int kConsumers = 20;
  constexpr int kTickets = kSanitized ? 2'000 : 20'000;
  WaitGroup wg;
  for (int c = 0; c < kConsumers; ++c) {
    wg.go([&] {
      std::unique_lock lock(mu);
      for (;;) {
        cond.wait(lock, [&] { return tickets > 0 || closed; });
        if (tickets == 0) return;  // closed and drained
        --tickets;
        ++taken;
      }
    });
  }
  for (int i = 0; i < kTickets; ++i) {
    {
      std::lock_guard lock(mu);
      ++tickets;
    }
    cond.signal();
    if (i % 8 == 0) this_fiber::yield();
  }
  {
    std::lock_guard lock(mu);
    closed = true;
  }
  cond.broadcast();
  wg.wait();
  EXPECT_EQ(taken, kTickets);
  EXPECT_EQ(tickets, 0);
}

FIBER_TEST(Cond, BroadcastWakesEveryWaiter) {
  Mutex mu;
  Cond cond;
  Cond arrived;
  int waiting = 0;
  bool go_now = false;
  std::atomic<int> woke{0};
  constexpr int kWaiters = 300;
  WaitGroup wg;
  for (int i = 0; i < kWaiters; ++i) {
    wg.go([&] {
      std::unique_lock lock(mu);
      ++waiting;
      arrived.signal();  // the broadcaster is the only one waiting on `arrived`
      while (!go_now) cond.wait(lock);
      woke.fetch_add(1);
    });
  }
  {
    std::unique_lock lock(mu);
    while (waiting < kWaiters) arrived.wait(lock);
    go_now = true;
  }
  cond.broadcast();
  wg.wait();
  EXPECT_EQ(woke.load(), kWaiters);
}

FIBER_TEST(Cond, SignalWakesOneAtATime) {
  Mutex mu;
  Cond cond;
  int waiting = 0;
  int permits = 0;
  std::atomic<int> woke{0};
  constexpr int kWaiters = 10;
  WaitGroup wg;
  for (int i = 0; i < kWaiters; ++i) {
    wg.go([&] {
      std::unique_lock lock(mu);
      ++waiting;
      while (permits == 0) cond.wait(lock);
      --permits;
      woke.fetch_add(1);
    });
  }
  for (int round = 1; round <= kWaiters; ++round) {
    {
      std::lock_guard lock(mu);
      ++permits;
    }
    cond.signal();
    // Exactly `round` waiters get through: wait for it (yielding; the woken fiber has no other
    // way to report), then check no extra one does.
    const TimePoint limit = Clock::now() + std::chrono::seconds(20);
    while (woke.load() < round && Clock::now() < limit) this_fiber::yield();
    EXPECT_EQ(woke.load(), round);
  }
  wg.wait();
  EXPECT_EQ(waiting, kWaiters);
}

FIBER_TEST(Cond, NoLostWakeupBetweenEnqueueAndUnlock) {
  // The signaller takes the lock right after the waiter releases it in wait(); the waiter must
  // already be queued by then. Repeated: a lost wake-up hangs (caught by the hang guard).
  Mutex mu;
  Cond cond;
  constexpr int kRounds = kSanitized ? 2'000 : 20'000;
  for (int round = 0; round < kRounds; ++round) {
    bool flag = false;
    WaitGroup wg;
    std::unique_lock lock(mu);
    wg.go([&] {
      std::lock_guard inner(mu);  // gets the lock only once wait() below released it
      flag = true;
      cond.signal();
    });
    while (!flag) cond.wait(lock);
    lock.unlock();
    wg.wait();
  }
}

FIBER_TEST(Cond, WaitForTimesOutAndRelocks) {
  Mutex mu;
  Cond cond;
  std::unique_lock lock(mu);
  EXPECT_EQ(cond.wait_for(lock, std::chrono::milliseconds(2)), std::cv_status::timeout);
  EXPECT_TRUE(lock.owns_lock());
  EXPECT_FALSE(mu.try_lock());  // really held again
  EXPECT_EQ(cond.wait_until(lock, Clock::now() - std::chrono::seconds(1)), std::cv_status::timeout);
  EXPECT_FALSE(cond.wait_for(lock, std::chrono::milliseconds(1), [] { return false; }));
  EXPECT_TRUE(cond.wait_for(lock, std::chrono::milliseconds(1), [] { return true; }));
  lock.unlock();
  // Nothing stayed queued: a signal now finds nobody, and a later waiter is not woken by it.
  cond.signal();
  lock.lock();
  EXPECT_EQ(cond.wait_for(lock, std::chrono::milliseconds(1)), std::cv_status::timeout);
}

FIBER_TEST(Cond, WaitWithPlainMutexOnSpindleMutexDirectly) {
  // Any BasicLockable works: the spindle::Mutex itself.
  Mutex mu;
  Cond cond;
  bool ready = false;
  WaitGroup wg;
  wg.go([&] {
    mu.lock();
    ready = true;
    mu.unlock();
    cond.signal();
  });
  mu.lock();
  while (!ready) cond.wait(mu);
  mu.unlock();
  wg.wait();
}

FIBER_TEST(Cond, TimedOutWaiterDoesNotSwallowSignal) {
  const int rounds = race_rounds();
  constexpr int kSlowdown = kSanitized ? 10 : 1;
  // Each round: waiter A waits with a deadline, waiter B without; one signal() lands within
  // +-15 us of A's deadline (ten times that under the sanitizers, whose slower switches and
  // timer checks would otherwise let one outcome win every round). If A reports a timeout, that signal must have gone to B (B returns
  // without a second one); if A reports it was signalled, B is still waiting and gets the next.
  Mutex mu;
  Cond cond;
  int a_signalled = 0;
  int a_timed_out = 0;
  for (int round = 0; round < rounds; ++round) {
    int waiting = 0;
    bool b_woken = false;
    std::cv_status a_status = std::cv_status::no_timeout;
    std::atomic<TimePoint::rep> a_deadline{0};
    WaitGroup a_done;
    WaitGroup b_done;
    a_done.go([&] {
      std::unique_lock lock(mu);
      // Long enough for B to queue behind A before it passes.
      const TimePoint dl = Clock::now() + std::chrono::microseconds(100 * kSlowdown);
      ++waiting;
      a_deadline.store(dl.time_since_epoch().count());
      a_status = cond.wait_until(lock, dl);
    });
    // A queues first (its `waiting` increment and its enqueue happen under mu), then B: the
    // signal goes to A unless A's deadline claimed it first.
    auto wait_for_waiting = [&](int n) {
      for (;;) {
        std::unique_lock lock(mu);
        if (waiting == n) return;
        lock.unlock();
        this_fiber::yield();
      }
    };
    wait_for_waiting(1);
    b_done.go([&] {
      std::unique_lock lock(mu);
      ++waiting;
      cond.wait(lock);  // one wait, no predicate: returns only when signalled
      b_woken = true;
    });
    wait_for_waiting(2);
    yield_until(TimePoint(Duration(a_deadline.load())) +
                std::chrono::microseconds((round % 31 - 15) * kSlowdown));
    cond.signal();
    a_done.wait();
    if (a_status == std::cv_status::timeout) {
      ++a_timed_out;
      if (!b_done.wait_for(std::chrono::seconds(20))) {
        ADD_FAILURE() << "round " << round << ": A timed out and B never got the signal";
        cond.signal();
        b_done.wait();
        return;
      }
    } else {
      ++a_signalled;
      {
        std::lock_guard lock(mu);
        EXPECT_FALSE(b_woken) << "one signal woke two waiters (round " << round << ")";
      }
      cond.signal();
      b_done.wait();
    }
    EXPECT_TRUE(b_woken);
  }
  EXPECT_EQ(a_signalled + a_timed_out, rounds);
  if (!force_migration()) {
    EXPECT_GT(a_signalled, 0);
    EXPECT_GT(a_timed_out, 0);
  }
}

}  // namespace
}  // namespace spindle
