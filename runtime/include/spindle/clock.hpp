// The clock every spindle deadline is measured on.
//
// All blocking calls funnel their `_for` and `_until` forms into one TimePoint on this monotonic
// clock, so a wall-clock step (NTP, a user changing the date) never fires or stalls a timer.
#pragma once

#include <chrono>

namespace spindle {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;

// A deadline that never arrives: waits with it block until woken.
inline constexpr TimePoint kNoDeadline = TimePoint::max();

// now + d, saturating instead of overflowing for huge durations (Go's time.Until semantics).
template <class Rep, class Period>
[[nodiscard]] TimePoint deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const auto now = Clock::now();
  if (d <= d.zero()) return now;
  const auto max_left = std::chrono::duration_cast<std::chrono::duration<double>>(kNoDeadline - now);
  if (std::chrono::duration_cast<std::chrono::duration<double>>(d) >= max_left) return kNoDeadline;
  return now + std::chrono::duration_cast<Duration>(d);
}

}  // namespace spindle
