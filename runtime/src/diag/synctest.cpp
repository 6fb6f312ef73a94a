// The synctest bubble: the virtual clock, synctest::wait, and the idle hook that moves time.
//
// Invariants: the virtual clock only moves forward, and only in synctest_idle, called by the
// bubble's single worker when it has nothing to run; so no fiber ever observes time passing
// while it or any other fiber of the bubble could run. g_virtual_now is written only by that
// worker (and by synctest_enter before the runtime starts).
#include "diag/synctest.hpp"

#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>
#include <spindle/errors.hpp>
#include <spindle/synctest.hpp>

#include "sched/scheduler.hpp"

namespace spindle::detail {

std::atomic<bool> g_virtual_clock{false};
std::atomic<Duration::rep> g_virtual_now{0};

namespace {

std::atomic<bool> g_in_bubble{false};

// Fibers in synctest::wait(), linked through Waiter::next.
SpinLock g_wait_mu;
Waiter* g_waiters = nullptr;

bool wake_waiters() {
  g_wait_mu.lock();
  Waiter* list = g_waiters;
  g_waiters = nullptr;
  g_wait_mu.unlock();
  if (list == nullptr) return false;
  while (list != nullptr) {
    Waiter* w = list;
    list = w->next;  // read before the wake: the waiter may be gone once readied
    (void)w->wake(WakeReason::notified);
  }
  return true;
}

}  // namespace

spindle::Options synctest_enter(const synctest::Options& opts) {
  if (current_scheduler() != nullptr) {
    throw RuntimeError("spindle::synctest::run: a runtime is already running (a bubble is a runtime "
                       "of its own: call synctest::run outside spindle::run)");
  }
  if (g_in_bubble.exchange(true, std::memory_order_acq_rel)) {
    throw RuntimeError("spindle::synctest::run: a bubble is already running");
  }
  g_waiters = nullptr;  // a previous bubble's, on stacks freed with its abandoned fibers
  g_virtual_now.store(Clock::now().time_since_epoch().count(), std::memory_order_release);
  g_virtual_clock.store(true, std::memory_order_seq_cst);
  spindle::Options o;
  o.workers = 1;  // one worker: a deterministic order, and "all blocked" is one worker's idleness
  o.default_stack_size = opts.default_stack_size;
  o.max_guarded_stacks = opts.max_guarded_stacks;
  o.on_deadlock = spindle::Options::OnDeadlock::throw_from_run;
  o.deadlock_grace = opts.deadlock_grace;
  return o;
}

void synctest_leave() noexcept {
  g_virtual_clock.store(false, std::memory_order_seq_cst);
  g_in_bubble.store(false, std::memory_order_release);
}

bool synctest_idle(Scheduler& s, TimePoint& deadline) {
  Netpoller* np = s.netpoller_.load(std::memory_order_acquire);
  const bool durable = s.nidle_.load(std::memory_order_seq_cst) == static_cast<int>(s.workers_.size()) &&
                       s.global_empty() && (np == nullptr || np->pending() == 0) &&
                       s.external_waits_.load(std::memory_order_seq_cst) == 0 &&
                       !s.stopping_.load(std::memory_order_seq_cst);
  if (durable) {
    if (wake_waiters()) return true;
    const TimePoint next = s.timers_.next();
    if (next != kNoDeadline) {
      if (next.time_since_epoch().count() > g_virtual_now.load(std::memory_order_relaxed)) {
        g_virtual_now.store(next.time_since_epoch().count(), std::memory_order_release);
      }
      return true;  // the worker's next check_timers() fires it
    }
  }
  deadline = kNoDeadline;
  return false;
}

}  // namespace spindle::detail

namespace spindle::synctest {

void wait(std::source_location where) {
  if (!in_bubble() || detail::current_scheduler() == nullptr) {
    throw RuntimeError("spindle::synctest::wait: called outside synctest::run");
  }
  if (!detail::in_fiber()) throw RuntimeError("spindle::synctest::wait: called outside a fiber");
  detail::Waiter w;
  detail::g_wait_mu.lock();
  w.next = detail::g_waiters;
  detail::g_waiters = &w;
  (void)detail::park(w, {detail::WaitReason::other, nullptr, where},
                     {.unlock = &detail::SpinLock::unlock_fn, .unlock_arg = &detail::g_wait_mu});
}

bool in_bubble() noexcept { return detail::g_in_bubble.load(std::memory_order_acquire); }

}  // namespace spindle::synctest
