// The clock every spindle deadline is measured on.
//
// All blocking calls funnel their `_for` and `_until` forms into one TimePoint on this monotonic
// clock, so a wall-clock step (NTP, a user changing the date) never fires or stalls a timer.
//
// spindle::now() is the runtime's "now": Clock::now(), except inside synctest::run
// (<spindle/synctest.hpp>), where time is virtual and moves only when every fiber is blocked.
// Code whose deadlines must agree with the runtime's timers reads spindle::now(), not
// Clock::now(); the TimePoint type is the same either way.
#pragma once

#include <atomic>
#include <chrono>

namespace spindle {

using Clock = std::chrono::steady_clock;
using Duration = Clock::duration;
using TimePoint = Clock::time_point;

// A deadline that never arrives: waits with it block until woken.
inline constexpr TimePoint kNoDeadline = TimePoint::max();

namespace detail {
// Set while a synctest runtime runs; its virtual time then lives in g_virtual_now (synctest.cpp).
extern std::atomic<bool> g_virtual_clock;
extern std::atomic<Duration::rep> g_virtual_now;
}  // namespace detail

// The runtime's current time (see above). Thread-safe; costs a relaxed load and a branch on top
// of Clock::now() outside synctest.
[[nodiscard]] inline TimePoint now() noexcept {
  if (detail::g_virtual_clock.load(std::memory_order_relaxed)) [[unlikely]] {
    return TimePoint(Duration(detail::g_virtual_now.load(std::memory_order_acquire)));
  }
  return Clock::now();
}

// now() + d, saturating instead of overflowing for huge durations (Go's time.Until semantics).
template <class Rep, class Period>
[[nodiscard]] TimePoint deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  const auto now = spindle::now();
  if (d <= d.zero()) return now;
  const auto max_left = std::chrono::duration_cast<std::chrono::duration<double>>(kNoDeadline - now);
  if (std::chrono::duration_cast<std::chrono::duration<double>>(d) >= max_left) return kNoDeadline;
  return now + std::chrono::duration_cast<Duration>(d);
}

}  // namespace spindle
