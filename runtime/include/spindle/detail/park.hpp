// park / ready: the one primitive every blocking operation in spindle is built on.
//
// A blocking operation (channel, mutex, sleep, context wait, I/O) follows one protocol:
//
//   lock(q);                       // the primitive's own SpinLock
//   Waiter w;                      // lives on the waiting fiber's stack
//   q.push(&w);
//   WakeReason r = park(w, site, {.unlock = SpinLock::unlock_fn, .unlock_arg = &q.lock});
//
// and a waker does
//
//   lock(q); Waiter* w = q.pop(); if (w->claim(WakeReason::notified)) w->ready(); unlock(q);
//
// Invariants that make this race-free (Go's gopark(unlockf); Boost.Fiber's resume_with):
//  * `unlock` runs on the scheduler's stack *after* the parking fiber is fully suspended, so a
//    waker that needs the lock can never ready a fiber that is still running on its own stack.
//  * A Waiter is claimed exactly once (CAS). Only the claimer calls ready(); a second wake
//    (a notify racing its timeout, two channels waking one select) loses the CAS and does nothing.
//  * ready() may arrive before the fiber has finished parking (e.g. from a timer, or a context
//    cancel, on another thread): the fiber is then re-queued as soon as it is off its stack.
//  * After park returns, the timer and the interrupt source (context) it armed are disarmed, so
//    nothing touches the Waiter again. The primitive must still remove the Waiter from its own
//    queue (under its lock) when it woke for a reason other than `notified`.
//
// Memory ordering: everything the waker wrote before ready() happens-before the woken fiber's
// return from park (the run queue hands the fiber over with release/acquire).
//
// Waiters also work on plain threads outside the runtime (e.g. `main` calling WaitGroup::wait
// before run() returns): park then blocks the thread on a futex.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <source_location>

#include <spindle/clock.hpp>

namespace spindle::detail {

struct Fiber;

// Why a fiber is blocked: shown in fiber dumps, traces and deadlock reports.
enum class WaitReason : std::uint8_t {
  none,
  yield,
  sleep,
  chan_send,
  chan_recv,
  select,
  select_no_cases,
  nil_chan,
  mutex,
  rwmutex_read,
  rwmutex_write,
  cond,
  once,
  waitgroup,
  semaphore,
  context,
  errgroup,
  io_read,
  io_write,
  blocking_call,
  join,
  other,
};
[[nodiscard]] const char* to_string(WaitReason r) noexcept;

// Who ended a park.
enum class WakeReason : std::uint32_t {
  none = 0,      // still waiting
  notified = 1,  // the primitive handed over what was waited for
  timeout = 2,   // the deadline passed
  canceled = 3,  // the interrupt source (a Context) fired
};

// Where and why a fiber waits; defaults to the caller's source location.
struct WaitSite {
  WaitReason reason = WaitReason::other;
  const void* object = nullptr;  // the channel / mutex / ... waited on, for dumps
  std::source_location where = std::source_location::current();
};

class Waiter {
 public:
  // Binds to the calling fiber, or to the calling thread when outside the runtime.
  Waiter() noexcept;
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // Claims the waiter for `why`; true for exactly one caller.
  [[nodiscard]] bool claim(WakeReason why) noexcept {
    if (claimers_ == Claimers::one_lock) {  // its claimers take turns
      state_.store(static_cast<std::uint32_t>(why), std::memory_order_relaxed);
      return true;
    }
    std::uint32_t expected = 0;
    return state_.compare_exchange_strong(expected, static_cast<std::uint32_t>(why),
                                          std::memory_order_acq_rel, std::memory_order_acquire);
  }
  // Makes the claimed waiter runnable. Call once, only after a successful claim(). The Waiter may
  // be gone as soon as this returns.
  //  * hand_off (the default): it runs next on the caller's worker, as the fiber the caller
  //    just gave something to (a channel receiver, a lock's next owner);
  //  * fifo: it queues behind every fiber readied earlier this way (the netpoller: connections
  //    that became ready must be served in the order they did, or the oldest wait longest).
  enum class Order : std::uint8_t { hand_off, fifo };
  void ready(Order order = Order::hand_off) noexcept;
  // ready() for each of `n` claimed waiters woken together (a close's receivers). Fibers parked
  // under a lock (claimers other than anyone) are queued on the caller's worker in one go.
  static void ready_all(Waiter* const* waiters, std::size_t n) noexcept;
  // claim + ready; false if somebody else already claimed it.
  bool wake(WakeReason why = WakeReason::notified) noexcept {
    if (!claim(why)) return false;
    ready();
    return true;
  }
  [[nodiscard]] WakeReason reason() const noexcept {
    return static_cast<WakeReason>(state_.load(std::memory_order_acquire));
  }
  [[nodiscard]] bool claimed() const noexcept { return reason() != WakeReason::none; }
  [[nodiscard]] Fiber* fiber() const noexcept { return fiber_; }

  // Who may claim it, declared before the waiter is published:
  //  * anyone (the default): a deadline, an interrupt, a thread;
  //  * lock_holders: only holders of a lock its park releases (ParkOptions::unlock), as for a
  //    select with no deadline and no context, which holds its channels' locks into the park.
  //    Its fiber is published as parked before those locks are dropped, so whoever claims it
  //    readies it without a compare-exchange (Scheduler::ready_parked);
  //  * one_lock: as lock_holders, with a single lock (a plain channel send or receive): its
  //    claimers take turns, so the claim is a plain store too.
  // Three locked instructions fewer per channel hand-off (each ~20 cycles on the Xeon the
  // benchmarks ran on), two for a select.
  enum class Claimers : std::uint8_t { anyone, lock_holders, one_lock };
  void set_claimers(Claimers c) noexcept { claimers_ = c; }
  [[nodiscard]] Claimers claimers() const noexcept { return claimers_; }

  // Intrusive links and payload for the primitive that queues this waiter.
  Waiter* next = nullptr;
  Waiter* prev = nullptr;
  void* data = nullptr;        // e.g. where a channel hands a value over
  std::uintptr_t tag = 0;      // e.g. which select case won, or a semaphore weight
  bool flag = false;           // e.g. "received from a send" vs "closed"

 private:
  friend struct ParkAccess;
  std::atomic<std::uint32_t> state_{0};      // WakeReason
  std::atomic<std::uint32_t> thread_done_{0}; // thread waiters: set after ready()
  Claimers claimers_ = Claimers::anyone;
  Fiber* fiber_;
};

// Something besides the primitive and the deadline that can end a wait: a Context.
// `arm` registers `w` to be claimed with WakeReason::canceled and readied when the source fires
// (and does so at once if it already has); `disarm` unregisters it, after which the source never
// touches `w` again. Both may be called from the scheduler's stack: they must not park.
struct Interrupt {
  void* self = nullptr;
  void (*arm)(void* self, Waiter& w) = nullptr;
  void (*disarm)(void* self, Waiter& w) = nullptr;
};

struct ParkOptions {
  void (*unlock)(void*) = nullptr;  // runs once the caller is suspended
  void* unlock_arg = nullptr;
  TimePoint deadline = kNoDeadline; // claim with WakeReason::timeout when it passes
  const Interrupt* interrupt = nullptr;
};

// Blocks the caller until `w` is claimed and readied. Returns why. Must not be called inside a
// catch block (libstdc++ keeps the handled exception per thread: a debug check enforces this).
WakeReason park(Waiter& w, const WaitSite& site, const ParkOptions& opts = {});

// True when the caller runs on a spindle fiber (false on plain threads).
[[nodiscard]] bool in_fiber() noexcept;

}  // namespace spindle::detail
