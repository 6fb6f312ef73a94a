// park / ready: see spindle/detail/park.hpp for the protocol and its invariants.
//
// The fiber side records why it waits, hands the worker a ParkRequest and switches to the
// worker's stack; the worker (Worker::after_switch) releases the primitive's lock, arms the
// deadline timer and the interrupt, and only then publishes the fiber as parked. ready() racing
// with that sees ParkState::running and leaves ParkState::notified behind, which the worker turns
// into an immediate requeue. A waiter that only lock holders may claim (Waiter::set_claimers) is
// published as parked before the lock is released instead: only a later holder can ready it.
#include <spindle/detail/park.hpp>

#include <exception>
#include <thread>

#include <spindle/this_fiber.hpp>

#include "diag/report.hpp"
#include "diag/synctest.hpp"
#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {

struct ParkAccess {
  static std::atomic<std::uint32_t>& thread_done(Waiter& w) { return w.thread_done_; }
};

namespace {

WakeReason park_thread(Waiter& w, const ParkOptions& opts) {
  if (opts.unlock != nullptr) opts.unlock(opts.unlock_arg);
  if (opts.interrupt != nullptr) opts.interrupt->arm(opts.interrupt->self, w);
  auto& done = ParkAccess::thread_done(w);
  TimePoint deadline = opts.deadline;
  while (done.load(std::memory_order_acquire) == 0) {
    if (deadline != kNoDeadline && spindle::now() >= deadline) {
      if (w.claim(WakeReason::timeout)) break;  // nobody else will ready us
      deadline = kNoDeadline;                   // a waker claimed first: wait for its ready()
      continue;
    }
    // In a synctest bubble the deadline is virtual and means nothing to a real sleep: poll.
    futex_wait(done, 0,
               deadline != kNoDeadline && virtual_clock_on() ? Clock::now() + std::chrono::milliseconds(1)
                                                             : deadline);
  }
  if (opts.interrupt != nullptr) opts.interrupt->disarm(opts.interrupt->self, w);
  return w.reason();
}

}  // namespace

Waiter::Waiter() noexcept : fiber_(current_fiber()) {}

void Waiter::ready(Order order) noexcept {
  if (fiber_ != nullptr) {
    Scheduler* s = current_scheduler();
    auto make_runnable = [&] {
      if (order == Order::fifo) s->ready_fifo(fiber_);
      else if (claimers_ != Claimers::anyone) s->ready_parked(fiber_);
      else s->ready(fiber_, /*next=*/true);
    };
    if (current_worker() != nullptr) {
      make_runnable();
      return;
    }
    // A thread outside the runtime: the fiber it readies may end the program while this thread
    // is still inside ready(); run_main() waits for outside wakers before freeing the scheduler
    // (the decrement is this thread's last access to it).
    s->outside_wakers_.fetch_add(1, std::memory_order_seq_cst);
    make_runnable();
    s->outside_wakers_.fetch_sub(1, std::memory_order_release);
    return;
  }
  thread_done_.store(1, std::memory_order_release);
  futex_wake(thread_done_);  // the waiter may be gone: a spurious futex wake is harmless
}

void Waiter::ready_all(Waiter* const* waiters, std::size_t n) noexcept {
  constexpr std::size_t kBatch = 64;
  constexpr std::size_t kAhead = 4;  // each waiter's fiber record is a cold line: fetch ahead
  const bool on_worker = current_worker() != nullptr;
  Fiber* parked[kBatch];
  std::size_t k = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(waiters[i + kAhead]->fiber_, 1);
    Waiter* w = waiters[i];
    if (!on_worker || w->fiber_ == nullptr || w->claimers_ == Claimers::anyone) {
      w->ready();
      continue;
    }
    parked[k++] = w->fiber_;  // the last read of w: it may be gone once its fiber is queued
    if (k == kBatch) {
      current_scheduler()->ready_parked_many(parked, k);
      k = 0;
    }
  }
  if (k > 0) current_scheduler()->ready_parked_many(parked, k);
}

bool in_fiber() noexcept { return current_fiber() != nullptr; }

WakeReason park(Waiter& w, const WaitSite& site, const ParkOptions& opts) {
  Fiber* f = w.fiber();
  if (f == nullptr) return park_thread(w, opts);
#ifndef NDEBUG
  if (std::current_exception() != nullptr) {
    die_broken_invariant(f, "a fiber parked inside a catch block (libstdc++ keeps the handled "
                            "exception per thread; capture it with std::current_exception and "
                            "act after the handler)");
  }
#endif
  if (opts.deadline != kNoDeadline && opts.deadline <= spindle::now() &&
      w.claim(WakeReason::timeout)) {
    if (opts.unlock != nullptr) opts.unlock(opts.unlock_arg);
    return WakeReason::timeout;
  }
  f->wait_reason.store(site.reason, std::memory_order_relaxed);
  f->wait_object.store(site.object, std::memory_order_relaxed);
  f->wait_site.store(site.where, std::memory_order_relaxed);
  Worker* worker = current_worker();
  f->wait_since.store(worker->round_ticks_, std::memory_order_relaxed);  // dumps only: no clock read

  TimerNode timer;
  worker->park_req_.waiter = &w;
  worker->park_req_.opts = &opts;
  worker->park_req_.timer = nullptr;
  if (opts.deadline != kNoDeadline) {
    timer.when = opts.deadline;
    timer.wake_on_expiry = &w;
    worker->park_req_.timer = &timer;
  }
  worker->after_ = AfterSwitch::park;
  worker->switch_away(f);
  // Resumed, perhaps on another worker. Disarm what may still point at `w`. A waiter woken by
  // its timeout was woken by this timer alone (the only claim with that reason once the timer
  // is queued): already out of the heap, and done with `timer` and `w` once it readied us. The
  // heap lock is skipped then (every sleep ends that way).
  if (opts.deadline != kNoDeadline && w.reason() != WakeReason::timeout) {
    current_scheduler()->timers_.cancel(&timer);
  }
  if (opts.interrupt != nullptr) opts.interrupt->disarm(opts.interrupt->self, w);
  f->wait_reason.store(WaitReason::none, std::memory_order_relaxed);
  f->wait_object.store(nullptr, std::memory_order_relaxed);
  return w.reason();
}

const char* to_string(WaitReason r) noexcept {
  switch (r) {
    case WaitReason::none: return "running";
    case WaitReason::yield: return "yield";
    case WaitReason::sleep: return "sleep";
    case WaitReason::chan_send: return "chan send";
    case WaitReason::chan_recv: return "chan receive";
    case WaitReason::select: return "select";
    case WaitReason::select_no_cases: return "select (no cases)";
    case WaitReason::nil_chan: return "chan send (nil chan)";
    case WaitReason::mutex: return "mutex";
    case WaitReason::rwmutex_read: return "rwmutex RLock";
    case WaitReason::rwmutex_write: return "rwmutex Lock";
    case WaitReason::cond: return "cond wait";
    case WaitReason::once: return "once";
    case WaitReason::waitgroup: return "waitgroup wait";
    case WaitReason::semaphore: return "semaphore acquire";
    case WaitReason::context: return "context done";
    case WaitReason::errgroup: return "errgroup";
    case WaitReason::io_read: return "IO wait (read)";
    case WaitReason::io_write: return "IO wait (write)";
    case WaitReason::blocking_call: return "blocking call";
    case WaitReason::join: return "join";
    case WaitReason::other: return "other";
  }
  return "?";
}

}  // namespace spindle::detail
