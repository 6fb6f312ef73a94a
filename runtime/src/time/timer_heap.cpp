#include "time/timer_heap.hpp"

#include <mutex>
#include <utility>

namespace spindle::detail {
namespace {
constexpr std::size_t kArity = 4;
}

bool TimerHeap::add(TimerNode* t) {
  std::lock_guard lock(mu_);
  t->heap.store(this, std::memory_order_release);
  heap_.push_back({t->when, t});
  sift_up(heap_.size() - 1);
  const bool earliest = heap_.front().node == t;
  if (earliest) publish_next();
  return earliest;
}

bool TimerHeap::cancel(TimerNode* t) {
  std::lock_guard lock(mu_);
  if (t->index == TimerNode::kNotQueued || t->heap.load(std::memory_order_relaxed) != this) return false;
  const bool was_front = t->index == 0;
  remove_at(t->index);
  if (was_front) publish_next();
  return true;
}

std::size_t TimerHeap::run_expired(TimePoint now, bool skip_if_held) {
  // Expired sleepers are claimed under the lock and readied after it, a batch at a time: with
  // ready() under the lock, 100k sleepers on two workers kept the other worker's add() waiting
  // so long that the lock's futex sleep and wake-up were a sixth of the run.
  constexpr std::size_t kBatch = 32;
  Waiter* to_ready[kBatch];
  std::size_t fired = 0;
  for (;;) {
    std::size_t n = 0;
    {
      if (!skip_if_held) {
        mu_.lock();
      } else if (!mu_.try_lock()) {
        return fired;
      }
      std::lock_guard lock(mu_, std::adopt_lock);
      while (n < kBatch && !heap_.empty() && heap_.front().when <= now) {
        TimerNode* t = heap_.front().node;
        remove_at(0);
        ++fired;
        if (Waiter* w = t->wake_on_expiry) {
          if (w->claim(WakeReason::timeout)) to_ready[n++] = w;
        } else if (t->fire(t)) {  // re-arm (a ticker)
          heap_.push_back({t->when, t});
          sift_up(heap_.size() - 1);
        }
      }
      publish_next();
    }
    for (std::size_t i = 0; i < n; ++i) to_ready[i]->ready();
    if (n < kBatch) return fired;
  }
}

std::size_t TimerHeap::size() const {
  std::lock_guard lock(mu_);
  return heap_.size();
}

void TimerHeap::publish_next() {
  next_.store(heap_.empty() ? kNoDeadline.time_since_epoch().count()
                            : heap_.front().when.time_since_epoch().count(),
              std::memory_order_seq_cst);
}

void TimerHeap::sift_up(std::size_t i) {
  const Entry e = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / kArity;
    if (heap_[parent].when <= e.when) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, e);
}

void TimerHeap::sift_down(std::size_t i) {
  const Entry e = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t first = i * kArity + 1;
    if (first >= n) break;
    std::size_t best = first;
    for (std::size_t c = first + 1; c < first + kArity && c < n; ++c) {
      if (heap_[c].when < heap_[best].when) best = c;
    }
    if (e.when <= heap_[best].when) break;
    place(i, heap_[best]);
    i = best;
  }
  place(i, e);
}

void TimerHeap::remove_at(std::size_t i) {
  heap_[i].node->index = TimerNode::kNotQueued;
  const Entry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  place(i, last);
  if (i > 0 && heap_[(i - 1) / kArity].when > last.when) {
    sift_up(i);
  } else {
    sift_down(i);
  }
}

}  // namespace spindle::detail
