// A count-down latch built directly on park/ready, so the runtime's own tests do not depend on
// the sync primitives they are the foundation of.
#pragma once

#include <atomic>
#include <cstdint>

#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle::testing {

class ParkLatch {
 public:
  explicit ParkLatch(std::int64_t count) : count_(count) {}

  // The latch may be destroyed as soon as a waiter returns, so the waiters are taken off it
  // under the lock and woken after releasing it: nothing of the latch is touched after that.
  void count_down() {
    mu_.lock();
    detail::Waiter* wake = nullptr;
    if (--count_ == 0) {
      wake = waiters_;
      waiters_ = nullptr;
    }
    mu_.unlock();
    while (wake != nullptr) {
      detail::Waiter* next = wake->next;  // read before ready(): the waiter may vanish after
      if (wake->claim(detail::WakeReason::notified)) wake->ready();
      wake = next;
    }
  }

  void wait() {
    mu_.lock();
    if (count_ == 0) {
      mu_.unlock();
      return;
    }
    detail::Waiter w;
    w.next = waiters_;
    waiters_ = &w;
    (void)detail::park(w, {detail::WaitReason::join, this},
                       {.unlock = detail::SpinLock::unlock_fn, .unlock_arg = &mu_});
  }

 private:
  detail::SpinLock mu_;
  std::int64_t count_;
  detail::Waiter* waiters_ = nullptr;  // woken all at once: order does not matter
};

}  // namespace spindle::testing
