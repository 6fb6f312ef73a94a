// Cond: the queue side of wait, and signal/broadcast (see spindle/cond.hpp).
//
// The waiter is queued with lock_ held, releases the user's lock while still holding lock_, and
// parks with lock_ released on the far side of the switch: a signaller needs lock_ to dequeue
// anyone, so it cannot find the waiter before it is queued nor ready it before it is parked.
// A signaller claims under lock_ and readies after releasing it, skipping waiters whose claim
// fails (their timeout or interrupt won), so a signal is never spent on a waiter that will
// report a timeout.
#include <spindle/cond.hpp>

#include "sync/wait_list.hpp"

namespace spindle {

using detail::Waiter;
using detail::WakeReason;
using detail::sync::ReadyList;
using detail::sync::WaitList;

void Cond::enqueue_locked(Waiter& w) noexcept {
  lock_.lock();
  WaitList(head_, tail_).push_back(&w);
}

void Cond::withdraw_locked(Waiter& w) noexcept {
  WaitList(head_, tail_).remove(&w);
  lock_.unlock();
}

WakeReason Cond::park_enqueued(Waiter& w, TimePoint deadline, const detail::Interrupt* in,
                               std::source_location where) {
  const WakeReason r = detail::park(w, {detail::WaitReason::cond, this, where},
                                    {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &lock_,
                                     .deadline = deadline, .interrupt = in});
  if (r == WakeReason::notified) return r;  // the signaller dequeued us
  lock_.lock();
  if (w.flag) WaitList(head_, tail_).remove(&w);
  lock_.unlock();
  return r;
}

void Cond::signal() noexcept {
  lock_.lock();
  WaitList q(head_, tail_);
  Waiter* w = detail::sync::pop_claimable(q);
  lock_.unlock();
  if (w != nullptr) w->ready();  // *this is not touched after the unlock above
}

void Cond::broadcast() noexcept {
  ReadyList ready;
  lock_.lock();
  WaitList q(head_, tail_);
  while (Waiter* w = detail::sync::pop_claimable(q)) ready.push(w);
  lock_.unlock();
  ready.ready_all();
}

}  // namespace spindle
