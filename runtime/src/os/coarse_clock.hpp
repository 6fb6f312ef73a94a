// A cheap, coarse monotonic clock (CLOCK_MONOTONIC_COARSE: a few ns, resolution of a scheduler
// tick, ~4 ms) for bookkeeping that does not need precision, such as "blocked for how long" in
// fiber dumps. Precise deadlines use spindle::Clock.
#pragma once

#include <time.h>

#include <cstdint>

namespace spindle::detail {

inline std::int64_t coarse_now_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace spindle::detail
