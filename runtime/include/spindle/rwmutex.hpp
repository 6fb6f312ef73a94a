// RWMutex: a reader/writer lock for fibers, Go's sync.RWMutex.
//
//   spindle::RWMutex mu;
//   { std::shared_lock lock(mu); read(); }       // SharedLockable: any number of readers
//   { std::unique_lock lock(mu); write(); }      // Lockable: one writer, no readers
//
// Writer-preferring, as Go's: once a writer waits, new readers block until it has had the lock,
// so a stream of readers cannot starve a writer. When a writer unlocks, the readers that queued
// behind it are admitted all together before the next waiting writer (which then waits for
// them to finish), so writers cannot starve readers either. Readers that already hold the lock
// run concurrently. Recursive read locking is not allowed (a waiting writer blocks the second
// lock_shared: deadlock), exactly as in Go. Not owned: any fiber or thread may unlock.
//
// State word (one 64-bit atomic): the number of active readers (low 32 bits) | kWriter (a writer
// holds the lock) | kWriterWaiting (the writer queue is not empty) | kReaderWaiting (the reader
// queue is not empty) | kQueueLock (guards both queues; a bit for the reason given in
// src/sync/wait_list.hpp). Invariants: the *Waiting bits mirror the queues and change only under
// kQueueLock; kWriter and the reader count are never both non-zero; while kQueueLock is held
// kWriter changes only by its holder.
//
// Memory ordering: unlock() happens-before every later lock() or lock_shared() returns;
// unlock_shared() happens-before the next lock() returns (readers are not ordered among
// themselves).
//
// Lifetime: may be destroyed once unlocked with no call on it in progress other than the
// unlock()/unlock_shared() that released it: their last access to the object is the atomic
// operation that releases it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <source_location>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>

namespace spindle {

class RWMutex {
 public:
  RWMutex() noexcept = default;
  RWMutex(const RWMutex&) = delete;
  RWMutex& operator=(const RWMutex&) = delete;
  ~RWMutex() = default;

  // --- writer side -----------------------------------------------------------------------

  // Blocks until the caller holds the lock exclusively. Thread-safe.
  void lock(std::source_location where = std::source_location::current()) {
    std::uint64_t expected = 0;
    if (state_.compare_exchange_strong(expected, kWriter, std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[likely]] {
      return;
    }
    (void)lock_slow(kNoDeadline, nullptr, where);
  }

  // Takes the lock exclusively if nobody holds it and no writer waits; never blocks. May fail
  // spuriously. Thread-safe.
  [[nodiscard]] bool try_lock() noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while ((s & (kReaderMask | kWriter | kWriterWaiting | kQueueLock)) == 0) {
      if (state_.compare_exchange_weak(s, s | kWriter, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Releases the exclusive lock; never blocks. Throws SyncError("sync: Unlock of unlocked
  // RWMutex") when no writer holds it.
  void unlock() {
    std::uint64_t expected = kWriter;
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                       std::memory_order_relaxed)) [[likely]] {
      return;
    }
    unlock_slow();
  }

  [[nodiscard]] bool try_lock_until(TimePoint deadline,
                                    std::source_location where = std::source_location::current()) {
    if (try_lock()) return true;
    return lock_slow(deadline, nullptr, where) == detail::WakeReason::notified;
  }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_for(std::chrono::duration<Rep, Period> d,
                                  std::source_location where = std::source_location::current()) {
    if (try_lock()) return true;
    if (d <= d.zero()) return false;
    return lock_slow(deadline_after(d), nullptr, where) == detail::WakeReason::notified;
  }

  // --- reader side -----------------------------------------------------------------------

  // Blocks until the caller holds the lock shared: while a writer holds it or waits for it.
  void lock_shared(std::source_location where = std::source_location::current()) {
    if (try_lock_shared()) [[likely]] return;
    (void)lock_shared_slow(kNoDeadline, nullptr, where);
  }

  // Takes the lock shared unless a writer holds it or waits for it; never blocks.
  [[nodiscard]] bool try_lock_shared() noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while ((s & (kWriter | kWriterWaiting)) == 0) {
      if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Releases one shared hold; never blocks. Throws SyncError("sync: RUnlock of unlocked
  // RWMutex") when no reader holds it. The last reader out hands the lock to a waiting writer.
  void unlock_shared() {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & kReaderMask) == 0 || ((s & kReaderMask) == 1 && (s & kAnyWaiting) != 0)) break;
      if (state_.compare_exchange_weak(s, s - 1, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
    unlock_shared_slow();
  }

  [[nodiscard]] bool try_lock_shared_until(
      TimePoint deadline, std::source_location where = std::source_location::current()) {
    if (try_lock_shared()) return true;
    return lock_shared_slow(deadline, nullptr, where) == detail::WakeReason::notified;
  }
  template <class Rep, class Period>
  [[nodiscard]] bool try_lock_shared_for(
      std::chrono::duration<Rep, Period> d,
      std::source_location where = std::source_location::current()) {
    if (try_lock_shared()) return true;
    if (d <= d.zero()) return false;
    return lock_shared_slow(deadline_after(d), nullptr, where) == detail::WakeReason::notified;
  }

  // Go's names.
  void rlock(std::source_location where = std::source_location::current()) { lock_shared(where); }
  void runlock() { unlock_shared(); }

  // --- internal ----------------------------------------------------------------------------

  // For Context-aware overloads (context.hpp): lock / lock_shared unless `deadline` passes or
  // `in` fires first. notified: the caller holds the lock; timeout or canceled: it does not, and
  // left no trace in the queues (a writer that gives up lets the readers it held back in).
  [[nodiscard]] detail::WakeReason detail_lock(
      TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current()) {
    if (try_lock()) return detail::WakeReason::notified;
    return lock_slow(deadline, in, where);
  }
  [[nodiscard]] detail::WakeReason detail_lock_shared(
      TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current()) {
    if (try_lock_shared()) return detail::WakeReason::notified;
    return lock_shared_slow(deadline, in, where);
  }

 private:
  static constexpr std::uint64_t kReaderMask = 0xFFFF'FFFFull;
  static constexpr std::uint64_t kWriter = 1ull << 32;
  static constexpr std::uint64_t kWriterWaiting = 1ull << 33;
  static constexpr std::uint64_t kReaderWaiting = 1ull << 34;
  static constexpr std::uint64_t kQueueLock = 1ull << 35;
  static constexpr std::uint64_t kAnyWaiting = kWriterWaiting | kReaderWaiting;

  detail::WakeReason lock_slow(TimePoint deadline, const detail::Interrupt* in,
                               std::source_location where);
  detail::WakeReason lock_shared_slow(TimePoint deadline, const detail::Interrupt* in,
                                      std::source_location where);
  void unlock_slow();
  void unlock_shared_slow();
  static void release_queue_fn(void* self) noexcept;

  std::atomic<std::uint64_t> state_{0};
  detail::Waiter* writers_head_ = nullptr;  // FIFO of parked writers, under kQueueLock
  detail::Waiter* writers_tail_ = nullptr;
  detail::Waiter* readers_head_ = nullptr;  // FIFO of parked readers, under kQueueLock
  detail::Waiter* readers_tail_ = nullptr;
};

}  // namespace spindle
