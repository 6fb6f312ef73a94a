// SpinLock: the short lock that guards every wait queue in the runtime.
//
// Held only for a handful of instructions (queue a waiter, hand a value over), never across a
// park. It is safe to hold it *into* a park: `park` releases it on the far side of the stack
// switch, which is what makes wake-ups race-free (see park.hpp). A fiber must never hold a
// std::mutex across a park (it belongs to the thread, and the fiber may resume on another).
#pragma once

#include <atomic>

namespace spindle::detail {

void spin_pause() noexcept;   // cpu pause hint, then sched_yield after many rounds

class SpinLock {
 public:
  SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  [[nodiscard]] bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

  // For `park`: an unlock function taking the lock as an opaque pointer.
  static void unlock_fn(void* self) noexcept { static_cast<SpinLock*>(self)->unlock(); }

 private:
  void lock_slow() noexcept;
  std::atomic<bool> locked_{false};
};

}  // namespace spindle::detail
