// RunQueue: a worker's local queue of runnable fibers, after Go's runq (proc.go).
//
// A fixed ring of 256 slots with a single producer (the owning worker) and many consumers (the
// owner pops from the head, thieves grab half of it with one CAS on head), plus a `run_next`
// slot: a fiber readied by a channel hand-off runs next on the same worker, so a pair of fibers
// passing messages stays on one core instead of bouncing between them (FIELD-NOTES: Boost.Fiber
// loses 3-10x on ping-pong by letting the idle thread steal one of the pair). Thieves take
// run_next only as a last resort (steal_run_next).
//
// Invariants: only the owner writes tail_ and buf_ slots in [tail, head+256); head_ only moves
// forward by CAS. A fiber is in at most one queue slot.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "fiber/fiber.hpp"

namespace spindle::detail {

class RunQueue {
 public:
  static constexpr std::uint32_t kSize = 256;

  // Owner only. Returns false (and queues nothing) when the ring is full: the caller moves half
  // of it to the global queue (take_half_for_overflow) and retries.
  bool push(Fiber* f) noexcept {
    const std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t - h >= kSize) return false;
    buf_[t % kSize].store(f, std::memory_order_relaxed);
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // Owner only: puts f in run_next; returns the fiber it displaced (to be pushed), if any.
  Fiber* push_next(Fiber* f) noexcept { return run_next_.exchange(f, std::memory_order_acq_rel); }

  // Owner only.
  Fiber* pop() noexcept {
    Fiber* next = run_next_.load(std::memory_order_relaxed);
    if (next != nullptr && run_next_.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
      return next;
    }
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      Fiber* f = buf_[h % kSize].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release, std::memory_order_relaxed)) {
        return f;
      }
    }
  }

  // Owner only, when push() failed: removes half of the ring into `out`, returns the count.
  std::uint32_t take_half_for_overflow(Fiber** out) noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    std::uint32_t n = (t - h) / 2;
    for (std::uint32_t i = 0; i < n; ++i) out[i] = buf_[(h + i) % kSize].load(std::memory_order_relaxed);
    if (!head_.compare_exchange_strong(h, h + n, std::memory_order_release, std::memory_order_relaxed)) {
      return 0;  // thieves took some: the ring has room now
    }
    return n;
  }

  // Any thread: takes about half of the victim's fibers into `out` (room for kSize/2 + 1).
  std::uint32_t grab(Fiber** out, bool steal_run_next) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h;
      n -= n / 2;
      if (n == 0) {
        if (steal_run_next) {
          Fiber* next = run_next_.load(std::memory_order_acquire);
          if (next != nullptr && run_next_.compare_exchange_strong(next, nullptr, std::memory_order_acq_rel)) {
            out[0] = next;
            return 1;
          }
        }
        return 0;
      }
      if (n > kSize / 2) continue;  // read an inconsistent head/tail pair: retry
      for (std::uint32_t i = 0; i < n; ++i) out[i] = buf_[(h + i) % kSize].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return n;
      }
    }
  }

  [[nodiscard]] bool empty() const noexcept {
    return tail_.load(std::memory_order_seq_cst) == head_.load(std::memory_order_seq_cst) &&
           run_next_.load(std::memory_order_seq_cst) == nullptr;
  }
  [[nodiscard]] bool has_run_next() const noexcept {
    return run_next_.load(std::memory_order_acquire) != nullptr;
  }
  [[nodiscard]] std::uint32_t size() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire) +
           (has_run_next() ? 1u : 0u);
  }

 private:
  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::atomic<Fiber*> run_next_{nullptr};
  std::array<std::atomic<Fiber*>, kSize> buf_{};
};

}  // namespace spindle::detail
