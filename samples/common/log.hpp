// Log lines for humans: each stamped with the local wall-clock time to the millisecond.
// Wall time is only printed; nothing in the samples' logic reads it.
#pragma once

#include <string>
#include <string_view>

namespace samples {

// The local time of day, "14:03:07.251".
[[nodiscard]] std::string clock_now();

// Writes "14:03:07.251 <line>\n" to stderr in one call (lines from several threads do not mix).
// Fits a sample's `std::function<void(std::string_view)> log` hook as it is.
void log_stderr(std::string_view line);

}  // namespace samples
