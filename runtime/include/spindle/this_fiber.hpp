// Operations on the calling fiber.
#pragma once

#include <chrono>
#include <cstdint>
#include <source_location>
#include <string_view>

#include <spindle/clock.hpp>

namespace spindle::this_fiber {

// Lets other runnable fibers run; the caller goes to the back of its worker's queue.
// Outside the runtime: std::this_thread::yield().
void yield() noexcept;

// Parks the caller until `deadline`. Outside the runtime, blocks the thread. Returns at once for
// a deadline already past (Go: Sleep with d <= 0).
void sleep_until(TimePoint deadline, std::source_location where = std::source_location::current());

template <class Rep, class Period>
void sleep_for(std::chrono::duration<Rep, Period> d,
               std::source_location where = std::source_location::current()) {
  if (d <= d.zero()) return;
  sleep_until(deadline_after(d), where);
}

// The calling fiber's id (unique for the process's lifetime, never 0); 0 outside the runtime.
[[nodiscard]] std::uint64_t id() noexcept;
// The calling fiber's name ("" if none); renaming affects dumps and traces from now on.
[[nodiscard]] std::string_view name() noexcept;
void set_name(std::string_view name) noexcept;

}  // namespace spindle::this_fiber
