// The ring of a buffered channel: lock-free claims while nobody waits, the lock otherwise.
//
// Layout and protocol after crossbeam's array channel (crossbeam-channel/src/flavors/array.rs),
// itself Vyukov's bounded MPMC queue, with the stamps in an array of their own. Every slot
// carries a stamp: slot i holds no value for position p (lap * one_lap + i) while its stamp is
// p, and p's value once the stamp is p + 1; a receiver done with it sets p + one_lap, freeing
// it for the next lap. A sender
// claims the tail position with a CAS when the slot is free, writes, and publishes the stamp
// (release); a receiver claims the head when the stamp says the value is there (acquire).
//
// The slow bit (bit 63 of head and tail, chan_core.hpp) is set under the channel's lock by
// anyone about to queue a waiter, by close, and by the locked operations. It makes every
// lock-free CAS fail, so from then on head and tail move only under the lock: whoever holds it
// sees a frozen ring, except for claims made before the bit, which may still be writing or
// reading their slot (the locked operations wait for those slots' stamps). A lock-free claim
// that succeeded therefore happened while no waiter was queued: it has nobody to wake.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "chan/chan_internal.hpp"
#include <spindle/detail/spinlock.hpp>

namespace spindle::detail {

class Ring {
 public:
  static constexpr std::uint64_t kSlow = std::uint64_t{1} << 63;

  explicit Ring(ChanCore& c) noexcept
      : c_(c),
        head_(ChanAccess::ends(c)[0].pos),
        tail_(ChanAccess::ends(c)[1].pos),
        stamps_(ChanAccess::stamps(c)) {}

  enum class Fast : std::uint8_t { done, would_block, slow };

  // Lock-free send of *elem: done (moved from *elem), would_block (full, as far as this look
  // could tell), or slow (waiters or a close: take the lock).
  Fast try_push(void* elem) noexcept {
    std::uint64_t t = tail_.load(std::memory_order_relaxed);
    for (;;) {
      if (t & kSlow) return Fast::slow;
      const std::uint64_t i = index(t);
      const std::uint64_t stamp = stamps_[i].load(std::memory_order_acquire);
      if (stamp == t) {
        if (tail_.compare_exchange_weak(t, next(t), std::memory_order_relaxed)) {
          ChanAccess::ops(c_)->move_construct(value(i), elem);
          stamps_[i].store(t + 1, std::memory_order_release);
          return Fast::done;
        }
      } else if (stamp + ChanAccess::one_lap(c_) == t + 1) {
        return Fast::would_block;  // the slot still holds the previous lap's value
      } else {
        t = tail_.load(std::memory_order_relaxed);  // another sender moved on
      }
    }
  }

  // Lock-free receive into `out` (null: drop the value): done, would_block (empty), or slow.
  Fast try_pop(void* out, PutFn put) noexcept {
    std::uint64_t h = head_.load(std::memory_order_relaxed);
    for (;;) {
      if (h & kSlow) return Fast::slow;
      const std::uint64_t i = index(h);
      const std::uint64_t stamp = stamps_[i].load(std::memory_order_acquire);
      if (stamp == h + 1) {
        if (head_.compare_exchange_weak(h, next(h), std::memory_order_relaxed)) {
          take(i, out, put);
          stamps_[i].store(h + ChanAccess::one_lap(c_), std::memory_order_release);
          return Fast::done;
        }
      } else if (stamp == h) {
        return Fast::would_block;  // nothing sent at this position yet
      } else {
        h = head_.load(std::memory_order_relaxed);  // another receiver moved on
      }
    }
  }

  // --- under the channel's lock ---------------------------------------------------------------

  [[nodiscard]] bool slow() const noexcept { return tail_.load(std::memory_order_relaxed) & kSlow; }
  // Sets the slow bit (once per hold of the lock: it may already be set).
  void enter_slow() noexcept {
    if (tail_.load(std::memory_order_relaxed) & kSlow) return;
    tail_.fetch_or(kSlow, std::memory_order_relaxed);
    head_.fetch_or(kSlow, std::memory_order_relaxed);
  }
  // Clears it, letting lock-free claims resume: only with no waiter queued and the channel open,
  // and the channel kept alive until the caller's last touch (ChanAccess::unlock).
  void leave_slow() noexcept {
    if (!(tail_.load(std::memory_order_relaxed) & kSlow)) return;
    head_.fetch_and(~kSlow, std::memory_order_relaxed);
    tail_.fetch_and(~kSlow, std::memory_order_relaxed);
  }

  // Values in the ring (slow bit set: exact).
  [[nodiscard]] std::size_t count() const noexcept {
    return count(head_.load(std::memory_order_relaxed), tail_.load(std::memory_order_relaxed));
  }
  // A racy snapshot, for len() and select's readiness hints.
  [[nodiscard]] std::size_t count_hint() const noexcept {
    for (;;) {
      const std::uint64_t t = tail_.load(std::memory_order_acquire);
      const std::uint64_t h = head_.load(std::memory_order_acquire);
      if (tail_.load(std::memory_order_relaxed) == t) return count(h, t);
    }
  }

  // Slow bit set, ring not full.
  void push_locked(void* elem) noexcept {
    const std::uint64_t t = tail_.load(std::memory_order_relaxed) & ~kSlow;
    const std::uint64_t i = index(t);
    wait_for_stamp(i, t);  // a receiver that claimed the previous lap may still be reading it
    ChanAccess::ops(c_)->move_construct(value(i), elem);
    stamps_[i].store(t + 1, std::memory_order_release);
    tail_.store(next(t) | kSlow, std::memory_order_relaxed);
  }
  // Slow bit set, ring not empty.
  void pop_locked(void* out, PutFn put) noexcept {
    const std::uint64_t h = head_.load(std::memory_order_relaxed) & ~kSlow;
    const std::uint64_t i = index(h);
    wait_for_stamp(i, h + 1);  // a sender that claimed it may still be writing
    take(i, out, put);
    stamps_[i].store(h + ChanAccess::one_lap(c_), std::memory_order_release);
    head_.store(next(h) | kSlow, std::memory_order_relaxed);
  }

 private:
  std::uint64_t index(std::uint64_t pos) const noexcept { return pos & (ChanAccess::one_lap(c_) - 1); }
  void* value(std::uint64_t i) const noexcept {
    return ChanAccess::values(c_) + i * ChanAccess::ops(c_)->size;
  }
  std::uint64_t next(std::uint64_t pos) const noexcept {
    const std::uint64_t lap = ChanAccess::one_lap(c_);
    const std::uint64_t index = pos & (lap - 1);
    return index + 1 < ChanAccess::cap(c_) ? pos + 1 : (pos & ~(lap - 1)) + lap;
  }
  std::size_t count(std::uint64_t h, std::uint64_t t) const noexcept {
    h &= ~kSlow;
    t &= ~kSlow;
    const std::uint64_t mask = ChanAccess::one_lap(c_) - 1;
    const std::uint64_t hi = h & mask, ti = t & mask;
    if (hi < ti) return ti - hi;
    if (hi > ti) return ChanAccess::cap(c_) - hi + ti;
    return t == h ? 0 : ChanAccess::cap(c_);
  }
  void take(std::uint64_t i, void* out, PutFn put) noexcept {
    if (out != nullptr) put(out, value(i));
    ChanAccess::ops(c_)->destroy(value(i));
  }
  void wait_for_stamp(std::uint64_t i, std::uint64_t want) const noexcept {
    while (stamps_[i].load(std::memory_order_acquire) != want) spin_pause();
  }

  ChanCore& c_;
  std::atomic<std::uint64_t>& head_;
  std::atomic<std::uint64_t>& tail_;
  std::atomic<std::uint64_t>* const stamps_;
};

}  // namespace spindle::detail
