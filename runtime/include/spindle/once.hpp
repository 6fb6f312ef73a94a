// Once: runs a function exactly once, Go's sync.Once.
//
//   spindle::Once once;
//   once.call([] { init(); });      // from any number of fibers and threads
//
// The first caller runs f; callers that arrive while it runs park until it has returned; every
// later call returns at once without calling anything. If f throws, the Once still counts as
// done, as Go's does when f panics: the exception propagates to the caller that ran f, and later
// calls (and the callers that were waiting) return normally without running anything. A call
// from inside f on the same Once waits for itself forever (Go deadlocks the same way).
//
// State word: kIdle -> kRunning -> kDone, with kWaiters set (under lock_) while callers are
// parked in the queue. The fast path is one acquire load that sees kDone.
//
// Memory ordering: the return of f happens-before every call() returns (including those that
// returned through the fast path).
//
// Lifetime: a Once may be destroyed as soon as a call() has returned, provided no other call is
// still in progress: the caller that ran f makes the store of kDone its last access unless
// callers are parked, and those cannot return before it has finished waking them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <source_location>
#include <type_traits>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle {

class Once {
 public:
  Once() noexcept = default;
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;
  ~Once() = default;

  // Runs f() if no call has run it yet; otherwise waits until the call that runs it has
  // returned (parks while it runs). Rethrows what f throws, in the caller that ran it only.
  template <class F>
  void call(F&& f, std::source_location where = std::source_location::current()) {
    if (state_.load(std::memory_order_acquire) == kDone) [[likely]] return;
    (void)call_slow(erase(f), kNoDeadline, nullptr, where);
  }

  // True once f has returned (or thrown).
  [[nodiscard]] bool done() const noexcept {
    return state_.load(std::memory_order_acquire) == kDone;
  }

  // Internal, for Context-aware overloads (context.hpp): as call(), but a caller that has to
  // wait for another caller's f gives up when `deadline` passes or `in` fires. notified: f has
  // returned (run by this caller or another); timeout/canceled: f is still running elsewhere
  // and this caller left no trace. A caller that runs f itself is never interrupted.
  template <class F>
  [[nodiscard]] detail::WakeReason detail_call(
      F&& f, TimePoint deadline, const detail::Interrupt* in,
      std::source_location where = std::source_location::current()) {
    if (state_.load(std::memory_order_acquire) == kDone) return detail::WakeReason::notified;
    return call_slow(erase(f), deadline, in, where);
  }

 private:
  static constexpr std::uint32_t kIdle = 0;
  static constexpr std::uint32_t kRunning = 1;
  static constexpr std::uint32_t kDone = 2;
  static constexpr std::uint32_t kPhase = 3;
  static constexpr std::uint32_t kWaiters = 4;

  struct FnRef {
    void* self;
    void (*invoke)(void* self);
  };
  template <class F>
  static FnRef erase(F& f) noexcept {
    return FnRef{const_cast<void*>(static_cast<const void*>(std::addressof(f))),
                 [](void* self) { std::invoke(*static_cast<std::remove_reference_t<F>*>(self)); }};
  }

  detail::WakeReason call_slow(FnRef f, TimePoint deadline, const detail::Interrupt* in,
                               std::source_location where);
  void finish() noexcept;

  std::atomic<std::uint32_t> state_{kIdle};
  detail::SpinLock lock_;           // guards the queue and kWaiters
  detail::Waiter* head_ = nullptr;  // callers parked while f runs
  detail::Waiter* tail_ = nullptr;
};

}  // namespace spindle
