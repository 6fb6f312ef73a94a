// Mutex slow paths: spinning, queueing, starvation mode and hand-off (see spindle/mutex.hpp).
//
// Every change to the queue, kWaiters and kStarving happens with kQueueLock held; kLocked and
// kWoken also change lock-free (barging lockers, the fast unlock), so every update made under
// the queue lock is a compare-exchange loop that re-reads the word. unlock_slow releases the
// mutex and the queue lock in one compare-exchange and readies the chosen waiter only after
// it: that store is its last access to the Mutex (lifetime rule in the header).
#include <spindle/mutex.hpp>

#include <spindle/errors.hpp>

#include "sync/wait_list.hpp"

namespace spindle {

using detail::Waiter;
using detail::WakeReason;
using detail::sync::WaitList;

namespace {

// Go's starvationThresholdNs.
constexpr auto kStarvationThreshold = std::chrono::milliseconds(1);
// Go's active_spin / active_spin_cnt: 4 rounds of 30 pause instructions before parking (a
// critical section shorter than that is cheaper to wait out than a park and a wake). Empirical.
constexpr int kSpinRounds = 4;
constexpr int kSpinPauses = 30;
// Marks a waiter that unlock_slow handed the mutex to (Waiter::tag).
constexpr std::uintptr_t kHandedOff = 1;

}  // namespace

void Mutex::release_queue_fn(void* self) noexcept {
  static_cast<Mutex*>(self)->state_.fetch_and(~kQueueLock, std::memory_order_release);
}

WakeReason Mutex::lock_slow(TimePoint deadline, const detail::Interrupt* in,
                            std::source_location where) {
  TimePoint start{};          // when this caller first queued: its starvation clock
  bool woken = false;         // we were woken in normal mode (kWoken is ours to clear)
  bool starving = false;      // we have waited longer than the threshold
  int spins = 0;
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    // Normal mode and free: take it (a woken waiter also clears kWoken, as Go's does).
    if ((s & (kLocked | kStarving)) == 0) {
      std::uint32_t ns = s | kLocked;
      if (woken) ns &= ~kWoken;
      if (state_.compare_exchange_weak(s, ns, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return WakeReason::notified;
      }
      continue;
    }
    // Held in normal mode: its holder may release it within a few hundred nanoseconds.
    if ((s & kStarving) == 0 && spins < kSpinRounds && detail::sync::can_spin()) {
      ++spins;
      for (int i = 0; i < kSpinPauses; ++i) detail::spin_pause();
      s = state_.load(std::memory_order_relaxed);
      continue;
    }

    // Queue. Re-check with the queue lock held and publish kWaiters in the same
    // compare-exchange: an unlock that comes after it sees kWaiters and wakes us; one that came
    // before it left kLocked clear and we take the mutex here.
    s = detail::sync::lock_bit(state_, kQueueLock);
    bool acquired = false;
    for (;;) {
      if ((s & (kLocked | kStarving)) == 0) {
        std::uint32_t ns = (s | kLocked) & ~kQueueLock;
        if (woken) ns &= ~kWoken;
        if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
          acquired = true;
          break;
        }
        continue;
      }
      std::uint32_t ns = s | kWaiters;
      if (woken) ns &= ~kWoken;
      // Go switches to starvation mode only while the mutex is held (else there is nothing to
      // hand off and the mode would stick with nobody to clear it).
      if (starving && (s & kLocked) != 0) ns |= kStarving;
      if (state_.compare_exchange_weak(s, ns, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
        break;
      }
    }
    if (acquired) return WakeReason::notified;

    WaitList q(head_, tail_);
    Waiter w;
    if (!woken) start = Clock::now();
    w.data = &start;  // unlock_slow reads it to decide when starvation mode ends
    if (woken) q.push_front(&w);  // Go: a woken waiter that lost keeps its place at the head
    else q.push_back(&w);
    woken = false;
    const WakeReason r =
        detail::park(w, {detail::WaitReason::mutex, this, where},
                     {.unlock = &Mutex::release_queue_fn, .unlock_arg = this,
                      .deadline = deadline, .interrupt = in});
    if (r == WakeReason::notified) {
      if (w.tag == kHandedOff) return WakeReason::notified;  // starvation mode: we own it
      woken = true;
      spins = 0;
      starving = starving || Clock::now() - start > kStarvationThreshold;
      s = state_.load(std::memory_order_relaxed);
      continue;
    }

    // Timed out or interrupted: withdraw, unless unlock_slow already dequeued us (its claim
    // lost to ours, so it skipped us and handed the mutex or the wake-up to the next waiter).
    s = detail::sync::lock_bit(state_, kQueueLock);
    if (w.flag) q.remove(&w);
    for (;;) {
      std::uint32_t ns = s & ~kQueueLock;
      if (q.empty()) ns &= ~(kWaiters | kStarving);
      if (state_.compare_exchange_weak(s, ns, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        break;
      }
    }
    return r;
  }
}

void Mutex::unlock_slow() {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  int spins = 0;
  for (;;) {
    if ((s & kLocked) == 0) throw SyncError("sync: unlock of unlocked mutex");
    // Nobody to wake (no waiters, or a woken one is already on its way): just release.
    if ((s & kStarving) == 0 && ((s & kWaiters) == 0 || (s & kWoken) != 0)) {
      if (state_.compare_exchange_weak(s, s & ~kLocked, std::memory_order_release,
                                       std::memory_order_relaxed)) {
        return;
      }
      continue;
    }
    if ((s & kQueueLock) != 0) {
      detail::sync::backoff(spins);
      s = state_.load(std::memory_order_relaxed);
      continue;
    }
    if (state_.compare_exchange_weak(s, s | kQueueLock, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      s |= kQueueLock;
      break;
    }
  }

  // Queue lock held, and we still hold the mutex: nobody can acquire (or destroy) it until the
  // compare-exchange below. kStarving cannot change meanwhile (only under the queue lock).
  WaitList q(head_, tail_);
  Waiter* chosen = detail::sync::pop_claimable(q);
  const bool starving = (s & kStarving) != 0;
  bool end_starvation = q.empty();
  if (starving && chosen != nullptr && !end_starvation) {
    // Go leaves starvation mode when the waiter that gets the lock waited less than 1 ms.
    const TimePoint since = *static_cast<const TimePoint*>(chosen->data);
    end_starvation = Clock::now() - since < kStarvationThreshold;
  }
  if (starving && chosen != nullptr) chosen->tag = kHandedOff;
  for (;;) {
    std::uint32_t ns = s & ~kQueueLock;
    if (q.empty()) ns &= ~kWaiters;
    if (starving) {
      if (chosen == nullptr) ns &= ~(kLocked | kStarving);  // everyone left: plain release
      else if (end_starvation) ns &= ~kStarving;           // kLocked stays: it is theirs now
    } else {
      ns &= ~kLocked;
      if (chosen != nullptr) ns |= kWoken;
    }
    if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  // Our last access to *this was the exchange above; `chosen` cannot return before ready().
  if (chosen != nullptr) chosen->ready();
}

}  // namespace spindle
