// RWMutex: readers share, writers exclude, writers are not starved by readers, queued readers
// are let in when a writer gives up, misuse, timed forms, lifetime.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <spindle/debug.hpp>
#include <spindle/errors.hpp>
#include <spindle/rwmutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"
#include "support/polling.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using testing::eventually;
using testing::force_migration;
using testing::race_rounds;
using testing::yield_until;

constexpr bool kSanitized = testing::kAsan || testing::kTsan;

FIBER_TEST(RWMutex, ReadersHoldItTogether) {
  // Every reader waits, holding the read lock, until all are inside: only possible if they hold
  // it concurrently.
  RWMutex mu;
  constexpr int kReaders = 50;
  std::atomic<int> inside{0};
  std::atomic<int> saw_all{0};
  WaitGroup wg;
  for (int i = 0; i < kReaders; ++i) {
    wg.go([&] {
      std::shared_lock lock(mu);
      inside.fetch_add(1);
      if (eventually([&] { return inside.load() == kReaders; })) saw_all.fetch_add(1);
    });
  }
  wg.wait();
  EXPECT_EQ(saw_all.load(), kReaders);
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

FIBER_TEST(RWMutex, WritersExcludeEveryoneCountExactly) {
  // Writers keep two counters equal; readers check them under the read lock.
  RWMutex mu;
  std::int64_t a = 0;
  std::int64_t b = 0;
  std::atomic<int> torn{0};
  constexpr int kWriters = 20;
  constexpr int kReaders = 20;
  constexpr int kEach = kSanitized ? 300 : 3'000;
  WaitGroup wg;
  for (int w = 0; w < kWriters; ++w) {
    wg.go([&] {
      for (int i = 0; i < kEach; ++i) {
        std::lock_guard lock(mu);
        ++a;
        if (i % 64 == 0) this_fiber::yield();
        ++b;
      }
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    wg.go([&] {
      for (int i = 0; i < kEach; ++i) {
        std::shared_lock lock(mu);
        if (a != b) torn.fetch_add(1);
        if (i % 64 == 0) this_fiber::yield();
      }
    });
  }
  wg.wait();
  EXPECT_EQ(torn.load(), 0);
  std::shared_lock lock(mu);
  EXPECT_EQ(a, std::int64_t{kWriters} * kEach);
  EXPECT_EQ(b, a);
}

FIBER_TEST(RWMutex, WriterIsNotStarvedByStreamOfReaders) {
  // Readers overlap continuously (one always holds the read lock while another takes it), so a
  // reader-preferring lock would never let the writer in. Once the writer waits, new readers
  // must queue behind it.
  RWMutex mu;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> reads{0};
  constexpr std::int64_t kReadCap = 5'000'000;  // fail, rather than hang, if starved
  WaitGroup readers;
  for (int r = 0; r < 4; ++r) {
    readers.go([&] {
      while (!stop.load() && reads.load() < kReadCap) {
        mu.lock_shared();
        reads.fetch_add(1);
        this_fiber::yield();
        mu.unlock_shared();
      }
    });
  }
  ASSERT_TRUE(eventually([&] { return reads.load() > 100; }));
  mu.lock();
  const std::int64_t reads_at_write = reads.load();
  stop.store(true);
  mu.unlock();
  readers.wait();
  EXPECT_LT(reads_at_write, kReadCap) << "the writer was starved";
}

FIBER_TEST(RWMutex, WaitingWriterBlocksNewReaders) {
  RWMutex mu;
  mu.lock_shared();
  WaitGroup wg;
  std::atomic<bool> writer_in{false};
  wg.go([&] {
    mu.lock();
    writer_in.store(true);
    mu.unlock();
  });
  // Once the writer queues, try_lock_shared fails although only a reader holds the lock.
  ASSERT_TRUE(eventually([&] { return !mu.try_lock_shared() || (mu.unlock_shared(), false); }));
  EXPECT_FALSE(writer_in.load());
  mu.unlock_shared();  // the last reader hands over to the writer
  wg.wait();
  EXPECT_TRUE(writer_in.load());
}

FIBER_TEST(RWMutex, WriterUnlockAdmitsQueuedReadersBeforeNextWriter) {
  // Go: readers that queued behind a writer get the lock when it unlocks, even if another
  // writer waits; that writer then waits for them.
  RWMutex mu;
  mu.lock();
  std::atomic<int> readers_in{0};
  std::atomic<bool> second_writer_in{false};
  std::atomic<bool> release_readers{false};
  std::atomic<int> readers_saw_writer{0};
  WaitGroup wg;
  constexpr int kReaders = 5;
  std::atomic<int> trying{0};
  const std::uint64_t parks_before = runtime_stats().parks;  // nothing else parks in this test
  for (int i = 0; i < kReaders; ++i) {
    wg.go([&] {
      trying.fetch_add(1);
      mu.lock_shared();
      if (second_writer_in.load()) readers_saw_writer.fetch_add(1);
      readers_in.fetch_add(1);
      EXPECT_TRUE(eventually([&] { return release_readers.load(); }));
      mu.unlock_shared();
    });
  }
  // Let the readers queue (they cannot get in: a writer holds the lock: each parks once), then
  // a second writer, and let it queue too.
  ASSERT_TRUE(eventually([&] { return runtime_stats().parks >= parks_before + kReaders; }));
  wg.go([&] {
    mu.lock();
    second_writer_in.store(true);
    EXPECT_EQ(readers_in.load(), kReaders);
    mu.unlock();
  });
  ASSERT_TRUE(eventually([&] { return runtime_stats().parks >= parks_before + kReaders + 1; }));
  EXPECT_EQ(trying.load(), kReaders);
  mu.unlock();
  EXPECT_TRUE(eventually([&] { return readers_in.load() == kReaders; }));
  EXPECT_FALSE(second_writer_in.load());
  release_readers.store(true);
  wg.wait();
  EXPECT_TRUE(second_writer_in.load());
  EXPECT_EQ(readers_saw_writer.load(), 0);
}

FIBER_TEST(RWMutex, WriterThatTimesOutLetsQueuedReadersIn) {
  RWMutex mu;
  mu.lock_shared();  // R1
  WaitGroup wg;
  std::atomic<bool> writer_gave_up{false};
  std::atomic<bool> r2_in{false};
  wg.go([&] {
    EXPECT_FALSE(mu.try_lock_for(std::chrono::milliseconds(5)));
    writer_gave_up.store(true);
  });
  ASSERT_TRUE(eventually([&] { return !mu.try_lock_shared() || (mu.unlock_shared(), false); }));
  wg.go([&] {
    mu.lock_shared();  // queues behind the waiting writer
    r2_in.store(true);
    mu.unlock_shared();
  });
  wg.wait();  // R2 gets in once the writer gives up, while R1 still holds the lock
  EXPECT_TRUE(writer_gave_up.load());
  EXPECT_TRUE(r2_in.load());
  mu.unlock_shared();
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
}

FIBER_TEST(RWMutex, MisuseThrowsGoWording) {
  RWMutex mu;
  try {
    mu.unlock_shared();
    ADD_FAILURE() << "RUnlock of an unlocked RWMutex did not throw";
  } catch (const SyncError& e) {
    EXPECT_STREQ(e.what(), "sync: RUnlock of unlocked RWMutex");
  }
  try {
    mu.unlock();
    ADD_FAILURE() << "Unlock of an unlocked RWMutex did not throw";
  } catch (const SyncError& e) {
    EXPECT_STREQ(e.what(), "sync: Unlock of unlocked RWMutex");
  }
  mu.lock_shared();
  EXPECT_THROW(mu.unlock(), SyncError);  // a reader holds it, not a writer
  mu.unlock_shared();
  mu.lock();
  EXPECT_THROW(mu.unlock_shared(), SyncError);
  mu.unlock();
  mu.rlock();
  mu.runlock();
}

FIBER_TEST(RWMutex, TimedFormsTimeOutAndLeaveNothingBehind) {
  RWMutex mu;
  mu.lock();
  EXPECT_FALSE(mu.try_lock_for(std::chrono::milliseconds(1)));
  EXPECT_FALSE(mu.try_lock_shared_for(std::chrono::milliseconds(1)));
  EXPECT_FALSE(mu.try_lock_shared_until(Clock::now() - std::chrono::seconds(1)));
  mu.unlock();
  mu.lock_shared();
  EXPECT_FALSE(mu.try_lock_until(Clock::now() + std::chrono::milliseconds(1)));
  EXPECT_TRUE(mu.try_lock_shared_for(std::chrono::milliseconds(1)));  // no writer waits now
  mu.unlock_shared();
  mu.unlock_shared();
  // Fast paths work again: nothing stayed queued.
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  EXPECT_TRUE(mu.try_lock_shared());
  mu.unlock_shared();
}

FIBER_TEST(RWMutex, TimeoutRacingReleaseCountsExactly) {
  const int rounds = race_rounds();
  // A queued writer's (or reader's) deadline races the holder's release.
  RWMutex mu;
  int acquired = 0;
  int timed_out = 0;
  for (int round = 0; round < rounds; ++round) {
    const bool writer_holds = round % 2 == 0;
    if (writer_holds) mu.lock();
    else mu.lock_shared();
    WaitGroup wg;
    bool got = false;
    std::atomic<TimePoint::rep> deadline{0};
    wg.go([&] {
      const TimePoint dl = Clock::now() + std::chrono::microseconds(30);
      deadline.store(dl.time_since_epoch().count());
      if (writer_holds && round % 4 == 0) {
        got = mu.try_lock_shared_until(dl);
        if (got) mu.unlock_shared();
      } else {
        got = mu.try_lock_until(dl);
        if (got) mu.unlock();
      }
    });
    while (deadline.load() == 0) this_fiber::yield();
    yield_until(TimePoint(Duration(deadline.load())) + std::chrono::microseconds(round % 31 - 15));
    if (writer_holds) mu.unlock();
    else mu.unlock_shared();
    wg.wait();
    (got ? acquired : timed_out) += 1;
    ASSERT_TRUE(mu.try_lock()) << "round " << round;
    mu.unlock();
  }
  EXPECT_EQ(acquired + timed_out, rounds);
  if (!force_migration()) {
    EXPECT_GT(acquired, 0);
    EXPECT_GT(timed_out, 0);
  }
}

FIBER_TEST(RWMutex, DestroyedRightAfterRelease) {
  const int rounds = race_rounds();
  for (int round = 0; round < rounds; ++round) {
    auto* mu = new RWMutex;
    const bool shared = round % 2 == 1;
    if (shared) mu->lock_shared();
    else mu->lock();
    WaitGroup wg;
    wg.go([mu] {
      mu->lock();  // synchronises with the release below, then frees the lock
      mu->unlock();
      delete mu;
    });
    if (round % 3 == 0) this_fiber::yield();
    if (shared) mu->unlock_shared();
    else mu->unlock();
    wg.wait();
  }
}

FIBER_TEST(RWMutex, PlainThreadReaderAndWriter) {
  RWMutex mu;
  std::int64_t value = 0;
  constexpr int kEach = kSanitized ? 1'000 : 10'000;
  std::thread writer([&] {
    for (int i = 0; i < kEach; ++i) {
      std::lock_guard lock(mu);
      ++value;
    }
  });
  WaitGroup wg;
  for (int f = 0; f < 8; ++f) {
    wg.go([&] {
      for (int i = 0; i < kEach; ++i) {
        if (i % 2 == 0) {
          std::lock_guard lock(mu);
          ++value;
        } else {
          std::shared_lock lock(mu);
          EXPECT_GE(value, 0);
        }
      }
    });
  }
  wg.wait();
  writer.join();
  std::shared_lock lock(mu);
  EXPECT_EQ(value, std::int64_t{kEach} + 8 * (kEach / 2));
}

}  // namespace
}  // namespace spindle
