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

  void count_down() {
    mu_.lock();
    if (--count_ == 0) {
      while (detail::Waiter* w = waiters_) {
        waiters_ = w->next;
        if (w->claim(detail::WakeReason::notified)) w->ready();
      }
    }
    mu_.unlock();
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
