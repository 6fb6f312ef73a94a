// Semaphore: a weighted semaphore for fibers, golang.org/x/sync/semaphore.Weighted.
//
//   spindle::Semaphore sem(4);                 // at most 4 units in use
//   sem.acquire(2); use(); sem.release(2);
//
// Holds `size` tokens. acquire(n) takes n, parking until they are available; release(n) gives
// n back. Strictly FIFO, as x/sync's: a request that cannot be satisfied blocks every request
// queued behind it, even smaller ones that would fit (letting small requests pass would starve
// large ones under load); try_acquire fails while anybody is queued.
//
// Requests larger than the size can never succeed. x/sync's Acquire then waits for its context
// to be done; spindle does the same for the timed and internal forms (they wait out the
// deadline or the interrupt and fail), while the untimed acquire(n) throws SyncError
// ("semaphore: acquire of more than the semaphore's size") instead of blocking forever, and
// try_acquire(n) returns false. A negative n throws SyncError("semaphore: negative weight").
//
// Timeouts lose nothing: a waiter is either granted its tokens (and reports success) or times
// out holding none (a release that races with its timeout skips it and serves the next
// waiter). A waiter at the head that gives up lets the requests behind it through if they fit.
//
// Invariants (under lock_): 0 <= cur_ <= size_; the queue is FIFO; the head's request does not
// fit (size_ - cur_ < head's n) whenever lock_ is free.
//
// Memory ordering: a release(n) happens-before an acquire that obtains those tokens returns.
//
// Lifetime: may be destroyed once no call on it is in progress; release() does not touch it
// after releasing lock_, and the waiters it wakes do not touch it at all.
#pragma once

#include <chrono>
#include <cstdint>
#include <source_location>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/detail/context_fwd.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle {

class Semaphore {
 public:
  // A semaphore of `size` tokens, all available. Throws SyncError if size < 0.
  explicit Semaphore(std::int64_t size);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  ~Semaphore() = default;

  // Blocks until n tokens are taken (FIFO). Thread-safe. Throws SyncError for n < 0 or
  // n > size() (see above).
  void acquire(std::int64_t n = 1, std::source_location where = std::source_location::current());

  // Takes n tokens if they are available and nobody is queued; never blocks.
  [[nodiscard]] bool try_acquire(std::int64_t n = 1);

  // As acquire(), but gives up at `deadline`: true with the tokens taken, false with none.
  [[nodiscard]] bool try_acquire_until(
      TimePoint deadline, std::int64_t n = 1,
      std::source_location where = std::source_location::current()) {
    return detail_acquire(n, deadline, nullptr, where) == detail::WakeReason::notified;
  }
  template <class Rep, class Period>
  [[nodiscard]] bool try_acquire_for(
      std::chrono::duration<Rep, Period> d, std::int64_t n = 1,
      std::source_location where = std::source_location::current()) {
    return try_acquire_until(deadline_after(d), n, where);
  }

  // x/sync's Acquire(ctx, n): takes n tokens unless ctx is done first. Returns an empty code
  // with the tokens taken, else ctx.err() with none taken and nothing left in the queue (never
  // both). A context already done fails at once. n > size() waits for ctx to be done (throws
  // SyncError if it never can be, i.e. for background()). Throws SyncError for n < 0.
  [[nodiscard]] std::error_code acquire(const Context& ctx, std::int64_t n = 1,
                                        std::source_location where = std::source_location::current()) {
    return detail::context_wait(ctx, [&](TimePoint d, const detail::Interrupt* in) {
      return detail_acquire(n, d, in, where);
    });
  }

  // Returns n tokens and wakes the queued requests that now fit, in order. Never blocks.
  // Throws SyncError("semaphore: released more than held") if that would exceed the size
  // (nothing is released then).
  void release(std::int64_t n = 1);

  [[nodiscard]] std::int64_t size() const noexcept { return size_; }

  // Internal, for Context-aware overloads (context.hpp): acquires n tokens unless `deadline`
  // passes or `in` fires first. notified: the tokens are taken; timeout/canceled: none are,
  // and no trace is left in the queue. An n larger than the size waits for the deadline or the
  // interrupt (x/sync semantics); with neither it throws SyncError instead of blocking forever.
  [[nodiscard]] detail::WakeReason detail_acquire(
      std::int64_t n, TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current());

 private:
  const std::int64_t size_;
  std::int64_t cur_ = 0;            // tokens held, under lock_
  detail::SpinLock lock_;
  detail::Waiter* head_ = nullptr;  // FIFO of parked requests (Waiter::tag = n), under lock_
  detail::Waiter* tail_ = nullptr;
};

}  // namespace spindle
