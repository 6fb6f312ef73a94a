// Semaphore: token accounting and the FIFO of requests (see spindle/semaphore.hpp).
//
// Everything happens under lock_, as x/sync does it under its mutex. Grants are made by
// claiming a queued waiter: a waiter whose claim fails (its timeout or interrupt won) is
// dequeued without tokens and the next one is considered, so tokens are either granted to a
// waiter that will report success or stay available; never both, never lost. Claimed waiters
// are readied after lock_ is released.
#include <spindle/semaphore.hpp>

#include <spindle/errors.hpp>

#include "sync/wait_list.hpp"

namespace spindle {

using detail::Waiter;
using detail::WakeReason;
using detail::sync::ReadyList;
using detail::sync::WaitList;

namespace {

void check_weight(std::int64_t n) {
  if (n < 0) throw SyncError("semaphore: negative weight");
}

// Grants queued requests in order while they fit, stopping at the first that does not
// (x/sync's notifyWaiters: skipping it for smaller ones would starve large requests).
void grant_fitting(WaitList& q, std::int64_t size, std::int64_t& cur, ReadyList& ready) noexcept {
  while (Waiter* w = q.front()) {
    const auto n = static_cast<std::int64_t>(w->tag);
    if (size - cur < n) break;
    q.remove(w);
    if (!w->claim(WakeReason::notified)) continue;  // timing out: it takes nothing
    cur += n;
    ready.push(w);
  }
}

}  // namespace

Semaphore::Semaphore(std::int64_t size) : size_(size) {
  if (size < 0) throw SyncError("semaphore: negative size");
}

void Semaphore::acquire(std::int64_t n, std::source_location where) {
  (void)detail_acquire(n, kNoDeadline, nullptr, where);
}

bool Semaphore::try_acquire(std::int64_t n) {
  check_weight(n);
  lock_.lock();
  const bool ok = size_ - cur_ >= n && head_ == nullptr;
  if (ok) cur_ += n;
  lock_.unlock();
  return ok;
}

WakeReason Semaphore::detail_acquire(std::int64_t n, TimePoint deadline,
                                     const detail::Interrupt* in, std::source_location where) {
  check_weight(n);
  WaitList q(head_, tail_);
  lock_.lock();
  if (size_ - cur_ >= n && q.empty()) {
    cur_ += n;
    lock_.unlock();
    return WakeReason::notified;
  }
  if (n > size_) {
    lock_.unlock();
    if (deadline == kNoDeadline && in == nullptr) {
      throw SyncError("semaphore: acquire of more than the semaphore's size");
    }
    // Never satisfiable: wait out the deadline or the interrupt without queueing, so as not to
    // block the requests behind it (x/sync does the same).
    Waiter w;
    return detail::park(w, {detail::WaitReason::semaphore, this, where},
                        {.deadline = deadline, .interrupt = in});
  }
  Waiter w;
  w.tag = static_cast<std::uintptr_t>(n);
  q.push_back(&w);
  const WakeReason r = detail::park(w, {detail::WaitReason::semaphore, this, where},
                                    {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &lock_,
                                     .deadline = deadline, .interrupt = in});
  if (r == WakeReason::notified) return r;  // granted: cur_ already counts our n

  // Gave up holding nothing. If we were the head, the requests behind us may fit now.
  ReadyList ready;
  lock_.lock();
  if (w.flag) {
    const bool was_front = q.front() == &w;
    q.remove(&w);
    if (was_front) grant_fitting(q, size_, cur_, ready);
  }
  lock_.unlock();
  ready.ready_all();
  return r;
}

void Semaphore::release(std::int64_t n) {
  check_weight(n);
  ReadyList ready;
  lock_.lock();
  if (n > cur_) {
    lock_.unlock();
    throw SyncError("semaphore: released more than held");
  }
  cur_ -= n;
  WaitList q(head_, tail_);
  grant_fitting(q, size_, cur_, ready);
  lock_.unlock();
  ready.ready_all();  // *this is not touched from here on
}

}  // namespace spindle
