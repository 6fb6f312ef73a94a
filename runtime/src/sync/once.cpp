// Once: electing the caller that runs f, parking the others, and waking them (see
// spindle/once.hpp).
//
// The runner publishes kDone with one exchange, which also tells it whether anyone is parked;
// with nobody parked that exchange is its last access to the Once. Parked callers are pinned:
// one whose park ends by timeout or interrupt takes lock_ and, if the runner has already
// published kDone but not yet dequeued it and it is the last one queued, re-parks on a fresh
// Waiter to take the runner's wake-up (so the runner never locks a Once that every caller has
// left). kWaiters is set and cleared under lock_ only.
#include <spindle/once.hpp>

#include <exception>

#include "sync/wait_list.hpp"

namespace spindle {

using detail::Waiter;
using detail::WakeReason;
using detail::sync::ReadyList;
using detail::sync::WaitList;

WakeReason Once::call_slow(FnRef f, TimePoint deadline, const detail::Interrupt* in,
                           std::source_location where) {
  std::uint32_t s = kIdle;
  if (state_.compare_exchange_strong(s, kRunning, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
    std::exception_ptr error;
    try {
      f.invoke(f.self);
    } catch (...) {
      error = std::current_exception();  // Go counts a panicking f as done: so do we
    }
    finish();
    if (error) std::rethrow_exception(error);
    return WakeReason::notified;
  }
  if ((s & kPhase) == kDone) return WakeReason::notified;

  WaitList q(head_, tail_);
  lock_.lock();
  s = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((s & kPhase) == kDone) {
      lock_.unlock();
      return WakeReason::notified;
    }
    // Publishing kWaiters with the phase check: the runner's exchange comes after this (and
    // sees it) or before it (and we see kDone).
    if (state_.compare_exchange_weak(s, s | kWaiters, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  Waiter w;
  q.push_back(&w);
  const WakeReason r = detail::park(w, {detail::WaitReason::once, this, where},
                                    {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &lock_,
                                     .deadline = deadline, .interrupt = in});
  if (r == WakeReason::notified) return r;

  lock_.lock();
  if (!w.flag) {  // finish() dequeued us (its claim lost to our timeout): f has returned
    lock_.unlock();
    return WakeReason::notified;
  }
  s = state_.load(std::memory_order_acquire);
  for (;;) {
    if ((s & kPhase) == kDone) {
      // The runner is on its way to lock_ to wake the queue.
      if (!q.only(&w)) {  // others keep the Once pinned until it comes
        q.remove(&w);
        lock_.unlock();
        return WakeReason::notified;
      }
      Waiter w2;
      q.replace(&w, &w2);
      (void)detail::park(w2, {detail::WaitReason::once, this, where},
                         {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &lock_});
      return WakeReason::notified;
    }
    if (!q.only(&w)) break;  // the others keep kWaiters set
    if (state_.compare_exchange_weak(s, s & ~kWaiters, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  q.remove(&w);
  lock_.unlock();
  return r;
}

void Once::finish() noexcept {
  const std::uint32_t s = state_.exchange(kDone, std::memory_order_acq_rel);
  if ((s & kWaiters) == 0) return;  // nobody parked: that exchange was our last access
  ReadyList ready;
  lock_.lock();
  WaitList q(head_, tail_);
  while (Waiter* w = q.pop_front()) {
    if (w->claim(WakeReason::notified)) ready.push(w);
  }
  lock_.unlock();
  ready.ready_all();
}

}  // namespace spindle
