// Cond: a condition variable for fibers, Go's sync.Cond (and std::condition_variable_any).
//
//   spindle::Mutex mu; spindle::Cond cond; bool ready = false;
//   // waiter                                   // signaller
//   std::unique_lock lock(mu);                  { std::lock_guard lock(mu); ready = true; }
//   while (!ready) cond.wait(lock);             cond.signal();
//
// wait(lock) atomically releases `lock` and parks, then re-acquires `lock` before returning.
// `lock` is any BasicLockable (spindle::Mutex, std::unique_lock<spindle::Mutex>, a
// std::unique_lock<std::mutex>, ...) whose unlock() does not block. "Atomically": the waiter is
// queued on the Cond *before* `lock` is released, so a signal sent by anyone who takes the lock
// after that reaches it (no lost wake-up). As in Go, a woken waiter re-checks its condition in
// a loop (another fiber may have taken the lock first and changed it); spindle itself does not
// wake waiters spuriously.
//
// signal() wakes the waiter that has waited longest, broadcast() wakes all; neither needs the
// lock held (Go allows both), neither blocks, and with no waiter they do nothing.
// Timed waits: a waiter whose deadline passes (or whose interrupt fires) is not counted by a
// signal that races with it: the signal goes to the next waiter instead, so a timed-out waiter
// never swallows a signal meant for another (Go's Cond has no timed wait; with its ticket scheme
// a cancelled waiter would consume one). A waiter that reports `timeout` was not signalled.
//
// Invariants: the queue (FIFO) is guarded by `lock_`; a waiter is in it from before the user's
// lock is released until a signal dequeues it or it withdraws after a timeout.
//
// Memory ordering: a signal()/broadcast() happens-before the wait it wakes returns (in practice
// the user's lock orders the data).
//
// Lifetime: a Cond may be destroyed once no wait on it is in progress; signal() and broadcast()
// do not touch it after releasing its lock, and the waiters they wake do not touch it at all.
#pragma once

#include <chrono>
#include <condition_variable>
#include <source_location>
#include <system_error>
#include <utility>

#include <spindle/clock.hpp>
#include <spindle/detail/context_fwd.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle {

class Cond {
 public:
  Cond() noexcept = default;
  Cond(const Cond&) = delete;
  Cond& operator=(const Cond&) = delete;
  ~Cond() = default;

  // Releases `lock`, parks until signalled, re-acquires `lock`. The caller must hold `lock`.
  template <class Lock>
  void wait(Lock& lock, std::source_location where = std::source_location::current()) {
    (void)detail_wait(lock, kNoDeadline, nullptr, where);
  }
  // while (!pred()) wait(lock);
  template <class Lock, class Pred>
  void wait(Lock& lock, Pred pred, std::source_location where = std::source_location::current()) {
    while (!pred()) (void)detail_wait(lock, kNoDeadline, nullptr, where);
  }

  // As wait(), but gives up at `deadline`: std::cv_status::timeout if not signalled by then.
  // `lock` is held again on return either way.
  template <class Lock>
  std::cv_status wait_until(Lock& lock, TimePoint deadline,
                            std::source_location where = std::source_location::current()) {
    return detail_wait(lock, deadline, nullptr, where) == detail::WakeReason::notified
               ? std::cv_status::no_timeout
               : std::cv_status::timeout;
  }
  template <class Lock, class Rep, class Period>
  std::cv_status wait_for(Lock& lock, std::chrono::duration<Rep, Period> d,
                          std::source_location where = std::source_location::current()) {
    return wait_until(lock, deadline_after(d), where);
  }
  // Waits until pred() holds (true) or the deadline passes with it still false (false).
  template <class Lock, class Pred>
  bool wait_until(Lock& lock, TimePoint deadline, Pred pred,
                  std::source_location where = std::source_location::current()) {
    while (!pred()) {
      if (detail_wait(lock, deadline, nullptr, where) != detail::WakeReason::notified) {
        return pred();
      }
    }
    return true;
  }
  template <class Lock, class Rep, class Period, class Pred>
  bool wait_for(Lock& lock, std::chrono::duration<Rep, Period> d, Pred pred,
                std::source_location where = std::source_location::current()) {
    return wait_until(lock, deadline_after(d), std::move(pred), where);
  }

  // As wait(), but also ends when ctx is done: an empty code if signalled, else ctx.err() (not
  // signalled, no longer queued: a racing signal goes to the next waiter). `lock` is held again
  // on return either way. A context already done fails at once without releasing `lock`.
  template <class Lock>
  [[nodiscard]] std::error_code wait(Lock& lock, const Context& ctx,
                                     std::source_location where = std::source_location::current()) {
    return detail::context_wait(ctx, [&](TimePoint d, const detail::Interrupt* in) {
      return detail_wait(lock, d, in, where);
    });
  }
  // Waits until pred() holds (empty code) or ctx is done with it still false (ctx.err()).
  template <class Lock, class Pred>
  [[nodiscard]] std::error_code wait(Lock& lock, const Context& ctx, Pred pred,
                                     std::source_location where = std::source_location::current()) {
    while (!pred()) {
      if (std::error_code ec = wait(lock, ctx, where)) return pred() ? std::error_code{} : ec;
    }
    return {};
  }

  // Wakes the longest-waiting waiter, if any. Never blocks. Thread-safe.
  void signal() noexcept;
  // Wakes every waiter. Never blocks. Thread-safe.
  void broadcast() noexcept;
  // std::condition_variable names.
  void notify_one() noexcept { signal(); }
  void notify_all() noexcept { broadcast(); }

  // Internal, for Context-aware overloads (context.hpp): one wait that also ends when
  // `deadline` passes or `in` fires. notified: signalled; timeout/canceled: not signalled and no
  // longer queued. `lock` is re-acquired (without deadline) before returning in every case.
  template <class Lock>
  [[nodiscard]] detail::WakeReason detail_wait(
      Lock& lock, TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current()) {
    detail::Waiter w;
    enqueue_locked(w);  // returns with lock_ held
    try {
      lock.unlock();
    } catch (...) {
      withdraw_locked(w);  // releases lock_; then the unlock error goes to the caller
      throw;
    }
    const detail::WakeReason r = park_enqueued(w, deadline, in, where);
    if constexpr (requires { lock.lock(where); }) {
      lock.lock(where);  // a spindle lock: dumps show the caller while it waits to relock
    } else {
      lock.lock();
    }
    return r;
  }

 private:
  void enqueue_locked(detail::Waiter& w) noexcept;
  void withdraw_locked(detail::Waiter& w) noexcept;
  detail::WakeReason park_enqueued(detail::Waiter& w, TimePoint deadline,
                                   const detail::Interrupt* in, std::source_location where);

  detail::SpinLock lock_;
  detail::Waiter* head_ = nullptr;  // FIFO of waiters, under lock_
  detail::Waiter* tail_ = nullptr;
};

}  // namespace spindle
