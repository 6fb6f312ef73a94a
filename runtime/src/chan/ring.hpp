// The ring of a buffered channel: each end behind its own short lock while nobody waits, the
// channel's lock otherwise.
//
// Slots after crossbeam's array channel (crossbeam-channel/src/flavors/array.rs), itself
// Vyukov's bounded queue, with the stamps in an array of their own: slot i holds no value for
// position p (lap * one_lap + i) while its stamp is p, and p's value once the stamp is p + 1; a
// receiver done with it sets p + one_lap, freeing it for the next lap. So a sender needs only
// the tail and a receiver only the head: a producer and a consumer on two cores share nothing
// but the slots' lines.
//
// Where crossbeam claims a position with a CAS, each end here has a spinlock that its senders
// (or receivers) take for the whole operation: on the Xeon of the benchmarks an uncontended
// `lock cmpxchg` costs ~1.3 ns more than the `xchg` of a spinlock (a loop of either alone: 7.7
// vs 6.4 ns), which was all of the difference between a single-worker SPSC through the ring
// and through a locked one. A sender never takes the head's lock nor a receiver the tail's, so
// the ends do not contend.
//
// The slow flag of each end (chan_core.hpp) is set, under the end's lock, by anyone holding
// the channel's lock who is about to queue a waiter, by close, and by the locked operations;
// an end operation that finds it set gives up (Fast::slow) and goes through the channel's
// lock. Setting it takes each end's lock once, so afterwards no end operation is in progress
// and none will start: whoever holds the channel's lock then owns the whole ring. An end
// operation that succeeded therefore ran while no waiter was queued: it has nobody to wake.
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
  explicit Ring(ChanCore& c) noexcept
      : c_(c),
        head_(ChanAccess::ends(c)[0]),
        tail_(ChanAccess::ends(c)[1]),
        stamps_(ChanAccess::stamps(c)) {}

  enum class Fast : std::uint8_t { done, would_block, slow };

  // Sends *elem holding only the tail's lock: done (moved from *elem), would_block (full), or
  // slow (waiters or a close: take the channel's lock).
  Fast try_push(void* elem) noexcept {
    EndGuard g(tail_);
    if (slow(tail_)) return Fast::slow;
    const std::uint64_t t = tail_.pos.load(std::memory_order_relaxed);
    const std::uint64_t i = index(t);
    // Under the tail's lock the stamp is t (freed for this lap) or the previous lap's t + 1 -
    // one_lap (its value not yet taken): anything but t means full.
    if (stamps_[i].load(std::memory_order_acquire) != t) return Fast::would_block;
    ChanAccess::ops(c_)->move_construct(value(i), elem);
    stamps_[i].store(t + 1, std::memory_order_release);
    tail_.pos.store(next(t), std::memory_order_release);
    return Fast::done;
  }

  // Receives into `out` (null: drop the value) holding only the head's lock: done,
  // would_block (empty), or slow.
  Fast try_pop(void* out, PutFn put) noexcept {
    EndGuard g(head_);
    if (slow(head_)) return Fast::slow;
    const std::uint64_t h = head_.pos.load(std::memory_order_relaxed);
    const std::uint64_t i = index(h);
    // The stamp is h + 1 (sent) or h (not sent yet: empty).
    if (stamps_[i].load(std::memory_order_acquire) != h + 1) return Fast::would_block;
    take(i, out, put);
    stamps_[i].store(h + ChanAccess::one_lap(c_), std::memory_order_release);
    head_.pos.store(next(h), std::memory_order_release);
    return Fast::done;
  }

  // --- under the channel's lock ---------------------------------------------------------------

  [[nodiscard]] bool slow() const noexcept { return slow(tail_); }
  // Stops the end operations (once per hold of the channel's lock: it may be stopped already).
  // Taking each end's lock waits out an operation in progress there.
  void enter_slow() noexcept {
    if (slow(tail_)) return;
    set_slow(tail_, true);
    set_slow(head_, true);
  }
  // Lets them resume: only with no waiter queued and the channel open, and the channel kept
  // alive until the caller's last touch (ChanAccess::unlock).
  void leave_slow() noexcept {
    if (!slow(tail_)) return;
    set_slow(head_, false);
    set_slow(tail_, false);
  }

  // Values in the ring (slow: exact).
  [[nodiscard]] std::size_t count() const noexcept {
    return count(head_.pos.load(std::memory_order_relaxed),
                 tail_.pos.load(std::memory_order_relaxed));
  }
  // A racy snapshot, for len() and select's readiness hints.
  [[nodiscard]] std::size_t count_hint() const noexcept {
    for (;;) {
      const std::uint64_t t = tail_.pos.load(std::memory_order_acquire);
      const std::uint64_t h = head_.pos.load(std::memory_order_acquire);
      if (tail_.pos.load(std::memory_order_relaxed) == t) return count(h, t);
    }
  }

  // Slow, ring not full.
  void push_locked(void* elem) noexcept {
    const std::uint64_t t = tail_.pos.load(std::memory_order_relaxed);
    const std::uint64_t i = index(t);
    ChanAccess::ops(c_)->move_construct(value(i), elem);
    stamps_[i].store(t + 1, std::memory_order_release);
    tail_.pos.store(next(t), std::memory_order_release);
  }
  // Slow, ring not empty.
  void pop_locked(void* out, PutFn put) noexcept {
    const std::uint64_t h = head_.pos.load(std::memory_order_relaxed);
    const std::uint64_t i = index(h);
    take(i, out, put);
    stamps_[i].store(h + ChanAccess::one_lap(c_), std::memory_order_release);
    head_.pos.store(next(h), std::memory_order_release);
  }

 private:
  using End = ChanAccess::RingEnd;
  class EndGuard {
   public:
    explicit EndGuard(End& e) noexcept : e_(e) { e_.lock.lock(); }
    ~EndGuard() { e_.lock.unlock(); }
    EndGuard(const EndGuard&) = delete;
    EndGuard& operator=(const EndGuard&) = delete;

   private:
    End& e_;
  };
  static bool slow(const End& e) noexcept { return e.slow.load(std::memory_order_relaxed); }
  static void set_slow(End& e, bool slow) noexcept {
    EndGuard g(e);
    e.slow.store(slow, std::memory_order_relaxed);
  }

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

  ChanCore& c_;
  End& head_;
  End& tail_;
  std::atomic<std::uint64_t>* const stamps_;
};

}  // namespace spindle::detail
