// WaitGroup: waits for a collection of fibers to finish, Go's sync.WaitGroup.
//
//   spindle::WaitGroup wg;
//   for (int i = 0; i < n; ++i) wg.go([i] { work(i); });   // add(1), run, done()
//   wg.wait();                                              // rethrows the first exception
//
// A counter: add(n) raises it, done() lowers it, wait() blocks until it is zero. wait() works
// in a fiber and on a plain thread outside the runtime (e.g. `main` waiting for fibers that a
// runtime on another thread is running), and done() may be called from either.
//
// Go's rules apply: an add with a positive delta that starts from zero must happen before the
// wait() it is meant to delay; a WaitGroup may be reused (new add()s) once every wait() of the
// previous round has returned (a wait that timed out has returned); a negative counter throws
// SyncError("sync: negative WaitGroup counter") and leaves the counter unchanged.
//
// Exceptions from go(): the first exception that escapes a function started by go() is kept and
// rethrown by the next wait() (or successful wait_for/wait_until) that returns after the counter
// reaches zero; later ones are dropped (errgroup keeps the first error the same way). It is
// rethrown once, by one waiter, and then cleared, so the group can be reused. It is never lost
// to std::terminate and never crashes the process. Functions run with plain add()/done() are the
// caller's business: an exception escaping a plain spindle::go fiber still ends the process.
//
// State word (64 bits): counter (signed, high 32 bits) | number of parked waiters (low 32).
// Waiters register (and withdraw after a timeout) under lock_; the done() that brings the
// counter to zero resets the whole word in one compare-exchange and, only if waiters were
// registered, takes lock_ to wake them.
//
// Memory ordering: every done() (and everything its fiber did before it) happens-before the
// wait() that it releases returns.
//
// Lifetime: the WaitGroup may be destroyed as soon as a wait() returns, provided no other call
// on it is in progress (another wait() included; the done() that released the wait does not
// count). The last done() touches the object for the last time with the compare-exchange that
// zeroes the counter unless a waiter is parked, and parked waiters cannot return before it has
// released lock_ and woken them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <source_location>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>

#include <spindle/clock.hpp>
#include <spindle/detail/context_fwd.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>
#include <spindle/runtime.hpp>

namespace spindle {

class WaitGroup {
 public:
  WaitGroup() noexcept = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;
  ~WaitGroup() = default;

  // Adds `delta` (may be negative) to the counter; when it reaches zero every waiter is
  // released. Throws SyncError("sync: negative WaitGroup counter") if it would go below zero,
  // and SyncError("sync: WaitGroup counter overflow") past INT32_MAX; the counter is then left
  // unchanged. Never blocks. Thread-safe; callable outside the runtime.
  void add(std::int64_t delta);
  // add(-1).
  void done() { add(-1); }

  // Blocks until the counter is zero. Then rethrows the exception captured from a go()
  // function, if any (see above). Callable from a fiber or a plain thread.
  void wait(std::source_location where = std::source_location::current()) {
    (void)detail_wait(kNoDeadline, nullptr, where);
  }
  // As wait(), but gives up at `deadline`: true if the counter reached zero, false on timeout
  // (leaving nothing registered; a captured exception stays for the next wait).
  [[nodiscard]] bool wait_until(TimePoint deadline,
                                std::source_location where = std::source_location::current()) {
    return detail_wait(deadline, nullptr, where) == detail::WakeReason::notified;
  }
  template <class Rep, class Period>
  [[nodiscard]] bool wait_for(std::chrono::duration<Rep, Period> d,
                              std::source_location where = std::source_location::current()) {
    return wait_until(deadline_after(d), where);
  }

  // As wait(), but gives up when ctx is done (context.hpp): returns an empty code when the
  // counter reached zero (then rethrows a captured go() exception as wait() does), else
  // ctx.err(), leaving nothing registered. A context already done fails at once.
  [[nodiscard]] std::error_code wait(const Context& ctx,
                                     std::source_location where = std::source_location::current()) {
    return detail::context_wait(ctx, [&](TimePoint d, const detail::Interrupt* in) {
      return detail_wait(d, in, where);
    });
  }

  // Spawns fn(args...) in a new fiber counted by this group: add(1) now, done() when it
  // returns or throws. An exception escaping fn is captured for wait() (see above). fn and its
  // arguments are destroyed before done(), so they may refer to what the waiter frees after
  // wait() returns. Arguments are decay-copied as by spindle::go. Returns the fiber's id.
  // Throws RuntimeError (and undoes the add) when no runtime is running.
  template <class F, class... Args>
  std::uint64_t go(const SpawnOptions& opts, F&& fn, Args&&... args) {
    add(1);
    auto body = [wg = this, f = std::decay_t<F>(std::forward<F>(fn)),
                 tup = std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)]() mutable {
      std::exception_ptr error;
      {
        auto task = std::move(f);
        auto task_args = std::move(tup);
        try {
          std::apply(task, std::move(task_args));
        } catch (...) {
          error = std::current_exception();
        }
      }  // task and its arguments are gone before done()
      wg->finish_task(std::move(error));
    };
    try {
      return detail::spawn(opts, detail::make_callable(body));
    } catch (...) {
      done();  // the fiber does not exist: undo its add(1), then report the spawn failure
      throw;
    }
  }
  // wg.go(fn): records the caller as the fiber's spawn site (dumps, crash reports).
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>)
  std::uint64_t go(F&& fn, std::source_location where = std::source_location::current()) {
    return go(SpawnOptions{.where = where}, std::forward<F>(fn));
  }
  template <class F, class A0, class... Args>
    requires(!std::is_same_v<std::decay_t<F>, SpawnOptions> &&
             !std::is_same_v<std::decay_t<A0>, std::source_location>)
  std::uint64_t go(F&& fn, A0&& a0, Args&&... args) {
    return go(SpawnOptions{}, std::forward<F>(fn), std::forward<A0>(a0), std::forward<Args>(args)...);
  }

  // Internal, for Context-aware overloads (context.hpp): waits until the counter is zero
  // (notified; then rethrows a captured go() exception as wait() does), `deadline` passes
  // (timeout) or `in` fires (canceled); on timeout/canceled nothing stays registered.
  [[nodiscard]] detail::WakeReason detail_wait(
      TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current()) {
    if (counter_of(state_.load(std::memory_order_acquire)) != 0) {
      const detail::WakeReason r = wait_slow(deadline, in, where);
      if (r != detail::WakeReason::notified) return r;
    }
    if (has_error_.load(std::memory_order_acquire)) rethrow_error();
    return detail::WakeReason::notified;
  }

 private:
  static constexpr std::int64_t counter_of(std::uint64_t s) noexcept {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(s >> 32));
  }

  detail::WakeReason wait_slow(TimePoint deadline, const detail::Interrupt* in,
                               std::source_location where);
  void finish_task(std::exception_ptr error);
  void rethrow_error();

  std::atomic<std::uint64_t> state_{0};
  std::atomic<bool> has_error_{false};
  detail::SpinLock lock_;            // guards the queue, waiter registration and error_
  detail::Waiter* head_ = nullptr;   // parked waiters
  detail::Waiter* tail_ = nullptr;
  std::exception_ptr error_;         // first exception from a go() function
};

}  // namespace spindle
