// Go's duration notation (duration.hpp). The parser follows Go's src/time/format.go
// (ParseDuration, leadingInt, leadingFraction) step for step, in unsigned 64-bit arithmetic so
// that overflow is detected rather than wrapped.
#include "duration.hpp"

#include <cstdint>

#include <fmt/format.h>

namespace samples {
namespace {

constexpr std::uint64_t kMax = std::uint64_t{1} << 63;  // |INT64_MIN|: the largest magnitude

constexpr std::uint64_t kNanosecond = 1;
constexpr std::uint64_t kMicrosecond = 1000 * kNanosecond;
constexpr std::uint64_t kMillisecond = 1000 * kMicrosecond;
constexpr std::uint64_t kSecond = 1000 * kMillisecond;
constexpr std::uint64_t kMinute = 60 * kSecond;
constexpr std::uint64_t kHour = 60 * kMinute;

std::uint64_t unit_of(std::string_view u) {
  if (u == "ns") return kNanosecond;
  if (u == "us" || u == "\u00b5s" || u == "\u03bcs") return kMicrosecond;  // µs: micro sign, mu
  if (u == "ms") return kMillisecond;
  if (u == "s") return kSecond;
  if (u == "m") return kMinute;
  if (u == "h") return kHour;
  return 0;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The leading digits of s as an integer; false on overflow past kMax.
bool leading_int(std::string_view& s, std::uint64_t& x) {
  std::size_t i = 0;
  x = 0;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (x > kMax / 10) return false;
    x = x * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (x > kMax) return false;
  }
  s.remove_prefix(i);
  return true;
}

// The leading digits of s as a fraction x / scale; digits past what fits are dropped.
void leading_fraction(std::string_view& s, std::uint64_t& x, double& scale) {
  std::size_t i = 0;
  x = 0;
  scale = 1;
  bool overflow = false;
  for (; i < s.size() && is_digit(s[i]); ++i) {
    if (overflow) continue;
    if (x > (kMax - 1) / 10) {
      overflow = true;
      continue;
    }
    const std::uint64_t y = x * 10 + static_cast<std::uint64_t>(s[i] - '0');
    if (y > kMax) {
      overflow = true;
      continue;
    }
    x = y;
    scale *= 10;
  }
  s.remove_prefix(i);
}

std::optional<Duration> parse(std::string_view s, bool bare_seconds, std::string* error) {
  const std::string_view orig = s;
  auto fail = [&](std::string message) -> std::optional<Duration> {
    if (error != nullptr) *error = std::move(message);
    return std::nullopt;
  };
  auto invalid = [&] { return fail(fmt::format("time: invalid duration \"{}\"", orig)); };

  bool neg = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    neg = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return Duration::zero();
  if (s.empty()) return invalid();
  std::uint64_t d = 0;
  bool first = true;
  while (!s.empty()) {
    if (!(s.front() == '.' || is_digit(s.front()))) return invalid();
    // The integer part, then the fraction.
    const std::size_t before = s.size();
    std::uint64_t v = 0;
    if (!leading_int(s, v)) return invalid();
    const bool pre = before != s.size();
    std::uint64_t f = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s.front() == '.') {
      s.remove_prefix(1);
      const std::size_t at = s.size();
      leading_fraction(s, f, scale);
      post = at != s.size();
    }
    if (!pre && !post) return invalid();  // no digits at all, as in ".s"
    // The unit: everything up to the next number.
    std::size_t i = 0;
    while (i < s.size() && s[i] != '.' && !is_digit(s[i])) ++i;
    std::uint64_t unit = 0;
    if (i == 0) {
      if (!(bare_seconds && first && s.empty())) {
        return fail(fmt::format("time: missing unit in duration \"{}\"", orig));
      }
      unit = kSecond;
    } else {
      unit = unit_of(s.substr(0, i));
      if (unit == 0) return fail(fmt::format("time: unknown unit \"{}\" in duration \"{}\"", s.substr(0, i), orig));
      s.remove_prefix(i);
    }
    if (v > kMax / unit) return invalid();
    v *= unit;
    if (f > 0) {
      // The fraction as float64, as Go does: exact enough, and v stays exact when f is zero.
      v += static_cast<std::uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kMax) return invalid();
    }
    d += v;
    if (d > kMax) return invalid();
    first = false;
  }
  if (neg) return Duration(static_cast<Duration::rep>(0 - d));  // two's complement: -2^63 fits
  if (d > kMax - 1) return invalid();
  return Duration(static_cast<Duration::rep>(d));
}

// n / unit with the fraction's trailing zeros trimmed: 1500000 / 1000000 -> "1.5".
std::string decimal(std::uint64_t n, std::uint64_t unit) {
  std::string out = fmt::format("{}", n / unit);
  std::uint64_t frac = n % unit;
  if (frac == 0) return out;
  int width = 0;
  for (std::uint64_t u = unit; u > 1; u /= 10) ++width;
  std::string digits = fmt::format("{:0{}}", frac, width);
  while (digits.back() == '0') digits.pop_back();
  return out + "." + digits;
}

// n rounded (half up) to a multiple of step.
std::uint64_t round_to(std::uint64_t n, std::uint64_t step) { return (n + step / 2) / step * step; }

}  // namespace

std::optional<Duration> parse_duration(std::string_view s, std::string* error) { return parse(s, false, error); }

std::optional<Duration> parse_flag_duration(std::string_view s, std::string* error) {
  std::optional<Duration> d = parse(s, true, error);
  if (d && *d < Duration::zero()) {
    if (error != nullptr) *error = fmt::format("negative duration \"{}\"", s);
    return std::nullopt;
  }
  return d;
}

std::string format_duration(Duration d) {
  static_assert(std::is_same_v<Duration::period, std::nano>, "Duration counts nanoseconds");
  const auto count = d.count();
  if (count == 0) return "0s";
  const std::string sign = count < 0 ? "-" : "";
  const std::uint64_t n = count < 0 ? 0 - static_cast<std::uint64_t>(count) : static_cast<std::uint64_t>(count);
  if (n < kMicrosecond) return fmt::format("{}{}ns", sign, n);
  // Three significant digits; the rounding picks the unit (999.6us is "1ms", not "1000us").
  std::uint64_t step = 1;
  for (std::uint64_t m = n; m >= 1000; m /= 10) step *= 10;
  const std::uint64_t r = round_to(n, step);
  if (r < kMillisecond) return sign + decimal(r, kMicrosecond) + "us";
  if (r < kSecond) return sign + decimal(r, kMillisecond) + "ms";
  if (r < kMinute) return sign + decimal(r, kSecond) + "s";
  // From a minute up: h, m and s to the millisecond, trailing zero parts left out.
  const std::uint64_t ms = n < kMinute ? r : round_to(n, kMillisecond);
  const std::uint64_t h = ms / kHour;
  const std::uint64_t m = ms % kHour / kMinute;
  const std::uint64_t s = ms % kMinute;
  std::string out = sign;
  if (h > 0) out += fmt::format("{}h", h);
  if (m > 0 || (h > 0 && s > 0)) out += fmt::format("{}m", m);
  if (s > 0) out += decimal(s, kSecond) + "s";
  return out;
}

}  // namespace samples
