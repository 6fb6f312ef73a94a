// WaitGroup: the counter, waiter registration and the wake-up of the last done() (see
// spindle/waitgroup.hpp).
//
// Registration (waiter count + 1, only while the counter is positive) and withdrawal after a
// timeout happen under lock_, each in one compare-exchange on the state word; the add() that
// zeroes the counter resets the word in one compare-exchange without lock_. That exchange
// therefore either sees a waiter (and then that waiter is pinned: it cannot return before this
// add() has dequeued it under lock_) or sees none (and is the last access). A waiter whose
// park ends by timeout and that finds the counter already zero while still queued was counted
// by such an add() on its way to lock_: it re-parks on a fresh Waiter to take that wake-up
// instead of leaving, so the add() never touches a WaitGroup that nobody waits on.
#include <spindle/waitgroup.hpp>

#include <cstdint>
#include <limits>

#include <spindle/errors.hpp>

#include "sync/wait_list.hpp"

namespace spindle {

using detail::Waiter;
using detail::WakeReason;
using detail::sync::ReadyList;
using detail::sync::WaitList;

void WaitGroup::add(std::int64_t delta) {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t v = counter_of(s) + delta;
    if (v < 0) throw SyncError("sync: negative WaitGroup counter");
    if (v > std::numeric_limits<std::int32_t>::max()) {
      throw SyncError("sync: WaitGroup counter overflow");
    }
    const auto waiters = static_cast<std::uint32_t>(s);
    if (v > 0 || waiters == 0) {
      const std::uint64_t ns = (static_cast<std::uint64_t>(v) << 32) | waiters;
      if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return;  // for the last done() with nobody parked, this was the last access
      }
      continue;
    }
    if (state_.compare_exchange_weak(s, 0, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  // The counter reached zero with waiters parked: wake them all.
  ReadyList ready;
  lock_.lock();
  WaitList q(head_, tail_);
  while (Waiter* w = q.pop_front()) {
    if (w->claim(WakeReason::notified)) ready.push(w);
  }
  lock_.unlock();
  ready.ready_all();  // *this is not touched from here on
}

WakeReason WaitGroup::wait_slow(TimePoint deadline, const detail::Interrupt* in,
                                std::source_location where) {
  WaitList q(head_, tail_);
  lock_.lock();
  std::uint64_t s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (counter_of(s) == 0) {
      lock_.unlock();
      return WakeReason::notified;
    }
    // Register: from here on the add() that zeroes the counter sees us.
    if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acquire,
                                     std::memory_order_acquire)) {
      break;
    }
  }
  Waiter w;
  q.push_back(&w);
  const WakeReason r = detail::park(w, {detail::WaitReason::waitgroup, this, where},
                                    {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &lock_,
                                     .deadline = deadline, .interrupt = in});
  if (r == WakeReason::notified) return r;

  lock_.lock();
  if (!w.flag) {  // the zeroing add() dequeued us but our timeout claimed first: still zero
    lock_.unlock();
    return WakeReason::notified;
  }
  s = state_.load(std::memory_order_acquire);
  for (;;) {
    if (counter_of(s) == 0) {
      Waiter w2;  // see the file comment: wait for the zeroing add() that counted us
      q.replace(&w, &w2);
      (void)detail::park(w2, {detail::WaitReason::waitgroup, this, where},
                         {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &lock_});
      return WakeReason::notified;
    }
    // acquire on both outcomes (a failure order stronger than the success order draws
    // -Winvalid-memory-model from GCC 12; on x86 the exchange is a full barrier either way).
    if (state_.compare_exchange_weak(s, s - 1, std::memory_order_acquire, std::memory_order_acquire)) {
      break;
    }
  }
  q.remove(&w);
  lock_.unlock();
  return r;
}

void WaitGroup::finish_task(std::exception_ptr error) {
  if (error) {
    lock_.lock();
    if (!error_) {
      error_ = std::move(error);
      has_error_.store(true, std::memory_order_release);
    }
    lock_.unlock();
  }
  done();
}

void WaitGroup::rethrow_error() {
  std::exception_ptr e;
  lock_.lock();
  e = std::move(error_);
  error_ = nullptr;
  has_error_.store(false, std::memory_order_relaxed);
  lock_.unlock();
  if (e) std::rethrow_exception(e);
}

}  // namespace spindle
