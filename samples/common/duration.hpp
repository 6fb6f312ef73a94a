// Durations on the samples' command lines and in their output, in Go's notation.
//
// parse_duration is Go's time.ParseDuration: an optional sign, then one or more decimal numbers,
// each with an optional fraction and a unit ("300ms", "-1.5h", "2h45m", "1.5s"); the units are
// ns, us (or µs, μs), ms, s, m and h; "0" needs no unit. Anything else is an error whose message
// says what was wrong, worded as Go words it (`time: unknown unit "x" in duration "5x"`). Values
// past Duration's range (about 292 years) are errors too.
//
// parse_flag_duration is what the samples' flags accept: the same, except that a bare number is
// seconds ("1.5" is 1.5s, as the samples always took it) and a negative duration is an error.
//
// format_duration writes the same notation back, shortened for logs: below a minute, three
// significant digits in the largest unit that fits ("250ms", "1.23ms", "45us", "12.3s"); from a
// minute up, hours, minutes and seconds to the millisecond, trailing zero parts left out ("2m",
// "1m30s", "1h0m5s"). Go prints every digit ("1.234567ms") and the zeros ("2m0s"); the result
// here parses back with parse_duration to within that rounding. Microseconds print as "us"
// (ASCII) where Go prints "µs".
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <spindle/clock.hpp>

namespace samples {

using spindle::Duration;

// Go's time.ParseDuration. On failure: nullopt, and *error (if given) says why.
[[nodiscard]] std::optional<Duration> parse_duration(std::string_view s, std::string* error = nullptr);

// parse_duration, plus a bare number meaning seconds, minus negative durations.
[[nodiscard]] std::optional<Duration> parse_flag_duration(std::string_view s, std::string* error = nullptr);

// "0s", "750ns", "45us", "1.23ms", "250ms", "1.5s", "2m", "1m30s", "1h0m5s", "-1.5s".
[[nodiscard]] std::string format_duration(Duration d);

}  // namespace samples
