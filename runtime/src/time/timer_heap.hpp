// TimerHeap: a 4-ary min-heap of deadlines (sleeps, timed waits, time channels, context
// deadlines), each a TimerNode. Every worker has one (timer_heaps.hpp), with an atomic "next
// deadline" that other workers read without the lock. The lock is a SpinLock: held for a sift
// and a claim, a std::mutex's futex sleep and wake-up cost far more than the wait (100k sleepers
// on two workers sharing one heap: 17% lower wall time than with std::mutex).
//
// `fire` runs with the heap's lock held, so after cancel() returns the node is either removed
// (fire never runs) or fire has completed: the owner may then free the node. (A wake_on_expiry
// node's waiter is readied after the lock is dropped; its owner is the parked fiber, which
// cannot run, let alone free the node, before that ready().) Lock order: the heap lock is
// taken before any other runtime lock (fire may lock channels or run queues) and never while
// holding one.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle::detail {

class TimerHeap;

struct TimerNode {
  TimePoint when{};
  // Runs with the heap lock held; must not block nor call the heap. Returning true re-queues the
  // node at its (updated) `when`: a Ticker's next tick.
  bool (*fire)(TimerNode* self) noexcept = nullptr;
  void* owner = nullptr;                             // for fire's use
  // Instead of `fire`: a timed park's deadline. Expiry claims the waiter (WakeReason::timeout)
  // under the heap lock and readies it after the lock is dropped, so a burst of expiring
  // sleepers does not hold the lock through a ready() each (nor keep adders waiting on it).
  Waiter* wake_on_expiry = nullptr;
  std::size_t index = kNotQueued;
  static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);
  // The heap it was last queued on (set under that heap's lock), so that any thread can cancel it.
  std::atomic<TimerHeap*> heap{nullptr};
  [[nodiscard]] TimerHeap* queued_on() const noexcept { return heap.load(std::memory_order_acquire); }
};

class alignas(64) TimerHeap {  // its own cache lines: each worker's is written by that worker
 public:
  // Queues `t` (which must not be queued). Returns true if it became the earliest deadline
  // (so sleepers must re-arm their timeout).
  bool add(TimerNode* t);
  // Removes `t` if still queued; true if that prevented it from firing.
  bool cancel(TimerNode* t);
  // Fires every timer due at `now`; returns how many fired. With `skip_if_held`, gives up
  // (returning what it fired so far) when another thread holds the lock: it is adding to,
  // cancelling on or firing this heap, and a worker with nothing to run that waits for it only
  // pulls the heap's lines over to its own core.
  std::size_t run_expired(TimePoint now, bool skip_if_held = false);
  // Cheap, lock-free: is anything due at `now`?
  [[nodiscard]] bool due(TimePoint now) const noexcept {
    return now.time_since_epoch().count() >= next_.load(std::memory_order_seq_cst);
  }
  [[nodiscard]] TimePoint next() const noexcept {
    return TimePoint(Duration(next_.load(std::memory_order_seq_cst)));
  }
  [[nodiscard]] std::size_t size() const;

 private:
  void sift_up(std::size_t i);
  void sift_down(std::size_t i);
  void remove_at(std::size_t i);
  void publish_next();

  // Each entry carries its node's deadline: sifting compares four children per level, and
  // reading `when` through the node pointers cost a cache miss each (100k sleepers' nodes live
  // on 100k different stacks).
  struct Entry {
    TimePoint when;
    TimerNode* node;
  };
  void place(std::size_t i, const Entry& e) noexcept {
    heap_[i] = e;
    e.node->index = i;
  }

  mutable SpinLock mu_;
  std::vector<Entry> heap_;
  std::atomic<Duration::rep> next_{kNoDeadline.time_since_epoch().count()};
};

}  // namespace spindle::detail
