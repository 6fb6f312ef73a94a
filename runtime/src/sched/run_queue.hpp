// RunQueue: a worker's local queue of runnable fibers.
//
// A ring of 256 slots plus a `run_next` slot (after Go's runq, proc.go). A fiber readied by a
// hand-off (a channel send waking a receiver) goes to run_next and runs as soon as the waker
// parks, so a pair of fibers passing messages stays on one core (FIELD-NOTES: Boost.Fiber loses
// 3-10x on ping-pong by letting an idle thread steal one of the pair). Thieves take run_next only
// as a last resort.
//
// Unlike Go's FIFO ring, the owner pops the ring LIFO (newest first) and thieves steal the oldest
// half, as in Cilk-style work stealing: fork-join work (skynet, a loop that spawns then waits)
// then runs depth-first, keeping few stacks live and warm; with FIFO, 1M spawned fibers were
// nearly all alive at once (175k live stacks, 715 MB, measured). Starvation of the oldest entry
// is prevented by popping it first once it has been passed over for kStarvationLimit
// (Worker::StarvationWatch); a yielding fiber is requeued here and the next pick is FIFO.
//
// head, tail and an ABA tag share one 64-bit word, changed only by CAS: the owner's LIFO pop and
// a thief's grab race for the same slots, and the tag (bumped by every owner pop) stops a thief
// from committing a grab of slots the owner popped and refilled meanwhile.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>

#include "fiber/fiber.hpp"

namespace spindle::detail {

class RunQueue {
 public:
  static constexpr std::uint32_t kSize = 256;

  // Owner only. False when the ring is full (the caller moves half of it to the global queue).
  bool push(Fiber* f) noexcept { return push_many(&f, 1) == 1; }

  // Owner only: appends fs[0..n) in order, as many as there is room for, with one
  // compare-exchange (a batch of fibers woken together); returns how many.
  std::uint32_t push_many(Fiber* const* fs, std::uint32_t n) noexcept {
    std::uint64_t v = word_.load(std::memory_order_acquire);
    for (;;) {
      const Ends e = unpack(v);
      const std::uint32_t k = std::min(n, kSize - (e.tail - e.head));
      if (k == 0) return 0;
      for (std::uint32_t i = 0; i < k; ++i) {
        buf_[(e.tail + i) % kSize].store(fs[i], std::memory_order_relaxed);
      }
      if (word_.compare_exchange_weak(v, pack(e.head, e.tail + k, e.tag), std::memory_order_release,
                                      std::memory_order_acquire)) {
        return k;
      }
    }
  }

  // Owner only: puts f in run_next; returns the fiber it displaced (to be pushed), if any.
  Fiber* push_next(Fiber* f) noexcept {
    // Only the owner fills the slot (thieves only empty it): found empty, it stays empty until
    // this store, which publishes f; a locked exchange only when a thief may be taking the old
    // occupant. A hand-off usually finds it empty (a locked instruction costs ~20 cycles here).
    if (run_next_.load(std::memory_order_relaxed) == nullptr) {
      run_next_.store(f, std::memory_order_release);
      return nullptr;
    }
    return run_next_.exchange(f, std::memory_order_acq_rel);
  }

  // Owner only: takes the run_next fiber, unless it is empty or a thief took it first.
  Fiber* take_run_next() noexcept {
    Fiber* next = run_next_.load(std::memory_order_relaxed);
    if (next == nullptr || !run_next_.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
      return nullptr;
    }
    return next;
  }

  // Owner only. Normally run_next, else the newest fiber in the ring (LIFO). `fifo`: the oldest
  // in the ring instead of the newest (after a yield, so yielders round-robin). `ring_first`
  // (the periodic fairness pick): the oldest in the ring even before run_next, or a pair of
  // fibers handing off to each other through run_next would starve the ring forever.
  Fiber* pop(bool fifo = false, bool ring_first = false) noexcept {
    if (ring_first) {
      if (Fiber* oldest = pop_ring(true)) return oldest;
    }
    Fiber* next = run_next_.load(std::memory_order_relaxed);
    if (next != nullptr &&
        run_next_.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
      return next;
    }
    return pop_ring(fifo);
  }

 private:
  Fiber* pop_ring(bool fifo) noexcept {
    std::uint64_t v = word_.load(std::memory_order_acquire);
    for (;;) {
      const Ends e = unpack(v);
      if (e.tail == e.head) return nullptr;
      if (fifo) {
        Fiber* f = buf_[e.head % kSize].load(std::memory_order_relaxed);
        if (word_.compare_exchange_weak(v, pack(e.head + 1, e.tail, e.tag), std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
          return f;
        }
      } else {
        Fiber* f = buf_[(e.tail - 1) % kSize].load(std::memory_order_relaxed);
        if (word_.compare_exchange_weak(v, pack(e.head, e.tail - 1, e.tag + 1),
                                        std::memory_order_acq_rel, std::memory_order_acquire)) {
          return f;
        }
      }
    }
  }

 public:
  // Owner only, when push() failed: removes the older half of the ring into `out`.
  std::uint32_t take_half_for_overflow(Fiber** out) noexcept { return grab(out, false); }

  // Any thread: takes the older half of the ring into `out` (room for kSize/2 + 1 fibers).
  std::uint32_t grab(Fiber** out, bool steal_run_next) noexcept {
    std::uint64_t v = word_.load(std::memory_order_acquire);
    for (;;) {
      const Ends e = unpack(v);
      std::uint32_t n = e.tail - e.head;
      n -= n / 2;
      if (n == 0) {
        if (steal_run_next) {
          Fiber* next = run_next_.load(std::memory_order_acquire);
          if (next != nullptr &&
              run_next_.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
            out[0] = next;
            return 1;
          }
        }
        return 0;
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        out[i] = buf_[(e.head + i) % kSize].load(std::memory_order_relaxed);
      }
      if (word_.compare_exchange_weak(v, pack(e.head + n, e.tail, e.tag), std::memory_order_acq_rel,
                                      std::memory_order_acquire)) {
        return n;
      }
    }
  }

  // Owner only, a hint: the fiber a LIFO pop would return now (may be taken meanwhile by a
  // thief, and even finished: only to prefetch, never to dereference).
  // `behind`: the one that many LIFO pops later.
  [[nodiscard]] const Fiber* peek_newest(std::uint32_t behind = 0) const noexcept {
    const Ends e = unpack(word_.load(std::memory_order_relaxed));
    if (e.tail - e.head <= behind) return nullptr;
    return buf_[(e.tail - 1 - behind) % kSize].load(std::memory_order_relaxed);
  }

  // Owner only, a hint: the ring's oldest entry and its position. Both stay put while LIFO pops
  // and pushes pass it over; they change when it is taken (a FIFO pop, a steal) or, the ring
  // having emptied, another entry has come to sit in its place.
  struct Oldest {
    std::uint32_t index = 0;
    const Fiber* fiber = nullptr;  // null: the ring is empty
    bool operator==(const Oldest&) const = default;
  };
  [[nodiscard]] Oldest oldest() const noexcept {
    const Ends e = unpack(word_.load(std::memory_order_relaxed));
    if (e.tail == e.head) return {e.head, nullptr};
    return {e.head, buf_[e.head % kSize].load(std::memory_order_relaxed)};
  }

  [[nodiscard]] bool ring_empty() const noexcept {
    const Ends e = unpack(word_.load(std::memory_order_seq_cst));
    return e.tail == e.head;
  }
  [[nodiscard]] bool empty() const noexcept {
    return ring_empty() && run_next_.load(std::memory_order_seq_cst) == nullptr;
  }
  [[nodiscard]] bool has_run_next() const noexcept {
    return run_next_.load(std::memory_order_acquire) != nullptr;
  }
  [[nodiscard]] std::uint32_t size() const noexcept {
    const Ends e = unpack(word_.load(std::memory_order_acquire));
    return e.tail - e.head + (has_run_next() ? 1u : 0u);
  }

 private:
  // 22-bit head and tail (only their difference matters, at most kSize), 20-bit ABA tag.
  static constexpr std::uint32_t kIndexBits = 22;
  static constexpr std::uint32_t kIndexMask = (1u << kIndexBits) - 1;
  static constexpr std::uint32_t kTagMask = (1u << 20) - 1;
  struct Ends {
    std::uint32_t head, tail, tag;
  };
  static Ends unpack(std::uint64_t v) noexcept {
    const auto head = static_cast<std::uint32_t>(v & kIndexMask);
    auto tail = static_cast<std::uint32_t>((v >> kIndexBits) & kIndexMask);
    if (tail < head) tail += 1u << kIndexBits;  // tail wrapped the 22-bit space
    return {head, tail, static_cast<std::uint32_t>(v >> (2 * kIndexBits))};
  }
  static std::uint64_t pack(std::uint32_t head, std::uint32_t tail, std::uint32_t tag) noexcept {
    return static_cast<std::uint64_t>(head & kIndexMask) |
           (static_cast<std::uint64_t>(tail & kIndexMask) << kIndexBits) |
           (static_cast<std::uint64_t>(tag & kTagMask) << (2 * kIndexBits));
  }

  alignas(64) std::atomic<std::uint64_t> word_{0};
  std::atomic<Fiber*> run_next_{nullptr};
  std::array<std::atomic<Fiber*>, kSize> buf_{};
};

}  // namespace spindle::detail
