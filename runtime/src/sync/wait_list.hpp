// Helpers shared by the sync primitives: an intrusive FIFO of parked Waiters, a list of claimed
// waiters to ready once the primitive's lock is released, and a lock held as one bit of a state
// word.
//
// Invariants every primitive keeps with these:
//  * A Waiter's `flag` is true exactly while it is linked in a WaitList, and is read and written
//    only under the primitive's queue lock. A waiter whose park ended for a reason other than
//    `notified` takes the queue lock and unlinks itself if `flag` is still true; if it is false a
//    waker has already dequeued it (and, its claim having failed, skipped it: no hand-off lost).
//  * Wakers claim under the queue lock and ready() only after releasing it, reading each
//    waiter's `next` before readying it: a readied waiter may return at once and free both its
//    Waiter and the primitive, so nothing of either is touched after its ready().
//
// Why a lock bit in the state word (Mutex, RWMutex) rather than a separate detail::SpinLock:
// a primitive whose fast path releases ownership with one atomic operation on its state word
// must make that same operation its *last* touch of the object, because whoever acquires next
// may destroy it at once (a mutex inside a reference-counted object; POSIX and C++ require
// this to work). With a separate SpinLock the slow path would release ownership and then
// release the SpinLock: a fiber barging in between could lock, unlock and free the mutex before
// that second store. With the queue lock in the state word, releasing ownership and the queue
// lock is one compare-exchange.
#pragma once

#include <atomic>
#include <thread>

#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle::detail::sync {

// A FIFO of Waiters linked through Waiter::next/prev, viewing a primitive's head/tail members.
class WaitList {
 public:
  WaitList(Waiter*& head, Waiter*& tail) noexcept : head_(head), tail_(tail) {}

  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  [[nodiscard]] Waiter* front() const noexcept { return head_; }
  // True when `w` is the only waiter.
  [[nodiscard]] bool only(const Waiter* w) const noexcept { return head_ == w && tail_ == w; }

  void push_back(Waiter* w) noexcept {
    w->next = nullptr;
    w->prev = tail_;
    if (tail_ != nullptr) tail_->next = w;
    else head_ = w;
    tail_ = w;
    w->flag = true;
  }

  void push_front(Waiter* w) noexcept {
    w->prev = nullptr;
    w->next = head_;
    if (head_ != nullptr) head_->prev = w;
    else tail_ = w;
    head_ = w;
    w->flag = true;
  }

  void remove(Waiter* w) noexcept {
    if (w->prev != nullptr) w->prev->next = w->next;
    else head_ = w->next;
    if (w->next != nullptr) w->next->prev = w->prev;
    else tail_ = w->prev;
    w->next = w->prev = nullptr;
    w->flag = false;
  }

  Waiter* pop_front() noexcept {
    Waiter* w = head_;
    if (w != nullptr) remove(w);
    return w;
  }

  // Puts `nw` in `old`'s place (used when a waiter whose own Waiter was claimed by its timeout
  // must stay queued to receive a hand-off already under way: it re-parks on a fresh Waiter).
  void replace(Waiter* old, Waiter* nw) noexcept {
    nw->prev = old->prev;
    nw->next = old->next;
    if (nw->prev != nullptr) nw->prev->next = nw;
    else head_ = nw;
    if (nw->next != nullptr) nw->next->prev = nw;
    else tail_ = nw;
    old->next = old->prev = nullptr;
    old->flag = false;
    nw->flag = true;
  }

 private:
  Waiter*& head_;
  Waiter*& tail_;
};

// Claimed waiters, chained through Waiter::next once they are off their queue; readied after
// the primitive's lock is released.
class ReadyList {
 public:
  void push(Waiter* w) noexcept {
    w->next = nullptr;
    if (tail_ != nullptr) tail_->next = w;
    else head_ = w;
    tail_ = w;
  }
  [[nodiscard]] bool empty() const noexcept { return head_ == nullptr; }
  // Readies every waiter. Touches nothing of the primitive.
  void ready_all() noexcept {
    Waiter* w = head_;
    head_ = tail_ = nullptr;
    while (w != nullptr) {
      Waiter* next = w->next;  // read first: `w` may be gone once readied
      w->ready();
      w = next;
    }
  }

 private:
  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

// Claims the first waiter of `q` that can still be claimed, dequeuing it; waiters whose claim
// fails (their timeout or interrupt won) are dequeued and skipped: they find `flag` false and
// report their own wake reason. Returns nullptr when none is left.
inline Waiter* pop_claimable(WaitList& q) noexcept {
  while (Waiter* w = q.pop_front()) {
    if (w->claim(WakeReason::notified)) return w;
  }
  return nullptr;
}

// Back-off while another thread holds a short lock: pause, then give the CPU away (its holder
// may have been preempted by the OS). Empirical: 64 pauses is a few hundred nanoseconds, longer
// than any critical section here.
inline void backoff(int& spins) noexcept {
  if (++spins < 64) spin_pause();
  else std::this_thread::yield();
}

// Acquires `bit` of `state` as a lock; returns the state seen with the bit set. Never parks.
template <class T>
T lock_bit(std::atomic<T>& state, T bit) noexcept {
  int spins = 0;
  T s = state.load(std::memory_order_relaxed);
  for (;;) {
    if ((s & bit) == 0) {
      if (state.compare_exchange_weak(s, s | bit, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
        return s | bit;
      }
      continue;
    }
    backoff(spins);
    s = state.load(std::memory_order_relaxed);
  }
}

// True when a contended lock may spin before parking (Go's sync_runtime_canSpin): only in a
// fiber, with more than one worker, another worker busy running (whoever holds the lock may be
// about to release it) and nothing else runnable on this worker (spinning would delay it).
bool can_spin() noexcept;

}  // namespace spindle::detail::sync
