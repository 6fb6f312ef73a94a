// TimerHeaps: one TimerHeap per worker, plus one for threads outside the runtime (Go 1.14+
// keeps its timers per P the same way).
//
// A worker queues its timers (sleeps, timed waits, deadlines) on its own heap and fires that
// heap's expired timers at its scheduling points, so with every worker sleeping and waking
// fibers, no heap line and no heap lock moves between cores: with one shared heap, 100k
// sleepers on two workers spent a fifth of their time sifting lines the other worker had just
// written or spinning on its lock. No timer depends on one worker, though: a worker with nothing
// to run fires every heap's due timers, an idle worker sleeps until the earliest deadline of
// all heaps, and a busy one looks at all of them every kAllHeapsTick picks (scheduler.cpp).
// Another worker's heap is fired only if its lock is free: whoever holds it is firing it or
// will be back to it, and a worker that skipped a due heap does not go to sleep (its idle
// re-check sees the heap due), so no timer is left behind. Waiting for that lock instead,
// 100k sleepers on two workers spent 6% of their samples in the lock's spin.
//
// A node records the heap it is queued on (TimerNode::heap), so any thread may cancel it; each
// heap keeps its own lock order (timer_heap.hpp), and no two heaps' locks are ever held at once.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "time/timer_heap.hpp"

namespace spindle::detail {

class TimerHeaps {
 public:
  explicit TimerHeaps(int workers);
  TimerHeaps(const TimerHeaps&) = delete;
  TimerHeaps& operator=(const TimerHeaps&) = delete;

  // Queues `t` (which must not be queued) on worker `worker`'s heap, or the outside threads'
  // heap for -1. True if it became the earliest deadline of all heaps (idle workers must re-arm
  // their sleep).
  bool add(TimerNode* t, int worker);
  // Removes `t` from the heap it is queued on; true if that prevented it from firing.
  bool cancel(TimerNode* t) { return t->queued_on() != nullptr && t->queued_on()->cancel(t); }
  // Fires the due timers of worker `self`'s heap (-1: the outside threads' heap) and, with
  // `every_heap`, those of the other heaps whose lock is free. Returns how many fired.
  std::size_t run_expired(TimePoint now, int self, bool every_heap);
  // Cheap, lock-free: the earliest deadline of all heaps; is anything due at `now`?
  [[nodiscard]] TimePoint next() const noexcept;
  [[nodiscard]] bool due(TimePoint now) const noexcept;
  [[nodiscard]] TimePoint next(int worker) const noexcept { return heap(worker).next(); }

 private:
  [[nodiscard]] TimerHeap& heap(int worker) const noexcept {
    return *heaps_[worker < 0 ? heaps_.size() - 1 : static_cast<std::size_t>(worker)];
  }
  std::vector<std::unique_ptr<TimerHeap>> heaps_;  // TimerHeap is cache-line aligned
};

}  // namespace spindle::detail
