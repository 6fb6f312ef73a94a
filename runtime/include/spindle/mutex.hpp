// Mutex: a mutual-exclusion lock for fibers, Go's sync.Mutex.
//
//   spindle::Mutex mu;
//   { std::lock_guard lock(mu); ++counter; }      // Lockable: lock_guard, unique_lock, scoped_lock
//
// A fiber that cannot take the lock parks (its worker runs other fibers); a plain thread outside
// the runtime blocks on a futex. Like Go's, the mutex is not owned by a fiber: any fiber or
// thread may unlock it, not only the one that locked it.
//
// Fairness, after Go (src/sync/mutex.go): in *normal mode* waiters queue FIFO, but a woken
// waiter competes with newly arriving lockers, which usually win (they are already running):
// that is what makes a contended mutex fast. A waiter that fails to get the lock for more than
// 1 ms switches the mutex to *starvation mode*: unlock then hands ownership directly to the
// waiter at the head of the queue, and new arrivals neither barge nor spin but queue at the
// tail. The mutex returns to normal mode when the waiter that receives it is the last one, or
// waited less than 1 ms. A woken waiter that loses the race requeues at the head.
//
// State word (one atomic): kLocked | kWoken (a waiter was woken and is retrying, so unlock need
// not wake another) | kStarving | kWaiters (the queue is not empty) | kQueueLock (guards the
// waiter queue; see src/sync/wait_list.hpp for why it is a bit here and not a SpinLock).
// Invariants: kWaiters == queue not empty, both changed only under kQueueLock; kStarving is set
// only while the queue is not empty; in starvation mode kLocked is never cleared while a waiter
// can be handed the lock.
//
// Memory ordering: an unlock() happens-before the lock() (or successful try_lock) that next
// acquires the mutex returns, whether it barged in or was handed the lock.
//
// Lifetime: the mutex may be destroyed as soon as it is unlocked and no call on it is in
// progress other than the unlock() that released it: unlock()'s last access to the object is
// the one atomic operation that releases it (waking a waiter happens afterwards, through the
// waiter alone). In particular a fiber that locks, unlocks and destroys it is safe even while
// the previous holder is still returning from unlock().
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <source_location>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/detail/context_fwd.hpp>
#include <spindle/detail/park.hpp>

namespace spindle {

class Mutex {
 public:
  Mutex() noexcept = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  ~Mutex() = default;

  // Blocks until the caller holds the mutex. `where` names the caller in dumps. Thread-safe.
  void lock(std::source_location where = std::source_location::current()) {
    std::uint32_t expected = 0;
    if (state_.compare_exchange_strong(expected, kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) [[likely]] {
      return;
    }
    (void)lock_slow(kNoDeadline, nullptr, where);
  }

  // Takes the mutex if it is free and not reserved for a starving waiter; never blocks. May fail
  // spuriously (as std::mutex::try_lock may). Thread-safe.
  [[nodiscard]] bool try_lock() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while ((s & (kLocked | kStarving)) == 0) {
      if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Releases the mutex; never blocks. Throws SyncError("sync: unlock of unlocked mutex") if it
  // is not locked (Go makes this a fatal error). May be called by any fiber or thread.
  void unlock() {
    std::uint32_t expected = kLocked;
    if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                       std::memory_order_relaxed)) [[likely]] {
      return;
    }
    unlock_slow();
  }

  // Blocks until the caller holds the mutex (true) or `deadline` passes (false). TimedLockable.
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

  // Locks unless ctx is done first: an empty code when the caller holds the mutex, else
  // ctx.err() and the caller does not hold it (nothing left in the queue). A context already
  // done fails at once, even if the mutex is free.
  [[nodiscard]] std::error_code lock(const Context& ctx,
                                     std::source_location where = std::source_location::current()) {
    return detail::context_wait(ctx, [&](TimePoint d, const detail::Interrupt* in) {
      return detail_lock(d, in, where);
    });
  }

  // Internal, for Context-aware overloads (context.hpp): locks unless `deadline` passes or `in`
  // fires first. Returns notified when the caller holds the mutex, else timeout or canceled;
  // in those cases the caller does not hold it and left no trace in the queue.
  [[nodiscard]] detail::WakeReason detail_lock(
      TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current()) {
    if (try_lock()) return detail::WakeReason::notified;
    return lock_slow(deadline, in, where);
  }

 private:
  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kWoken = 2;
  static constexpr std::uint32_t kStarving = 4;
  static constexpr std::uint32_t kWaiters = 8;
  static constexpr std::uint32_t kQueueLock = 16;

  detail::WakeReason lock_slow(TimePoint deadline, const detail::Interrupt* in,
                               std::source_location where);
  void unlock_slow();
  static void release_queue_fn(void* self) noexcept;

  std::atomic<std::uint32_t> state_{0};
  detail::Waiter* head_ = nullptr;  // FIFO of parked lockers, under kQueueLock
  detail::Waiter* tail_ = nullptr;
};

}  // namespace spindle
