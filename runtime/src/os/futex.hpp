// Thin wrappers over the Linux futex system call, for sleeping workers and thread waiters.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>

#include <spindle/clock.hpp>

namespace spindle::detail {

// Sleeps while *word == expected, until woken or `deadline` (kNoDeadline: no limit). Spurious
// returns are possible: callers re-check their condition.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                       TimePoint deadline = kNoDeadline) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (deadline != kNoDeadline) {
    // FUTEX_WAIT takes a relative timeout on CLOCK_MONOTONIC, which steady_clock is on Linux.
    auto left = deadline - Clock::now();
    if (left <= Duration::zero()) return;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, tsp,
            nullptr, 0);
}

inline void futex_wake(std::atomic<std::uint32_t>& word, int count = 1) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, count, nullptr,
            nullptr, 0);
}

}  // namespace spindle::detail
