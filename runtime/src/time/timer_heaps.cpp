#include "time/timer_heaps.hpp"

#include <algorithm>

namespace spindle::detail {

TimerHeaps::TimerHeaps(int workers) {
  heaps_.reserve(static_cast<std::size_t>(workers) + 1);
  for (int i = 0; i <= workers; ++i) heaps_.push_back(std::make_unique<TimerHeap>());
}

bool TimerHeaps::add(TimerNode* t, int worker) {
  if (!heap(worker).add(t)) return false;  // not even its own heap's earliest
  return t->when <= next();
}

std::size_t TimerHeaps::run_expired(TimePoint now, int self, bool every_heap) {
  TimerHeap& own = heap(self);
  std::size_t fired = own.due(now) ? own.run_expired(now) : 0;
  if (!every_heap) return fired;
  for (const auto& h : heaps_) {
    if (h.get() != &own && h->due(now)) fired += h->run_expired(now, /*skip_if_held=*/true);
  }
  return fired;
}

TimePoint TimerHeaps::next() const noexcept {
  TimePoint earliest = kNoDeadline;
  for (const auto& h : heaps_) earliest = std::min(earliest, h->next());
  return earliest;
}

bool TimerHeaps::due(TimePoint now) const noexcept {
  return std::any_of(heaps_.begin(), heaps_.end(), [now](const auto& h) { return h->due(now); });
}

}  // namespace spindle::detail
