// http_client's flags (cli.hpp).
#include "cli.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace http_client {

bool parse_duration(std::string_view s, Duration& out) {
  double value = 0;
  const char* end = s.data() + s.size();
  auto [p, ec] = std::from_chars(s.data(), end, value);
  if (ec != std::errc() || p == s.data() || !(value >= 0) || !std::isfinite(value)) return false;
  const std::string_view unit(p, static_cast<std::size_t>(end - p));
  double seconds = 0;
  if (unit.empty() || unit == "s") {
    seconds = value;
  } else if (unit == "ms") {
    seconds = value / 1000;
  } else if (unit == "m") {
    seconds = value * 60;
  } else {
    return false;
  }
  if (seconds > 1e9) return false;
  out = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
  return true;
}

Args parse_args(int argc, const char* const* argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (!flag.starts_with("-") || flag == "-") {
      a.urls.emplace_back(flag);
      continue;
    }
    std::string_view value;
    bool has_value = false;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    if (flag == "-h" || flag == "--help") {
      a.help = true;
      continue;
    }
    if (flag == "--body") {
      a.print_body = true;
      continue;
    }
    Duration* d = flag == "--timeout"           ? &a.config.timeout
                  : flag == "--attempt-timeout" ? &a.config.attempt_timeout
                  : flag == "--backoff"         ? &a.config.backoff
                  : flag == "--backoff-max"     ? &a.config.backoff_max
                                                : nullptr;
    if (d == nullptr && flag != "--retries") {
      a.error = fmt::format("unknown flag {}", flag);
      return a;
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        a.error = fmt::format("{} needs a value", flag);
        return a;
      }
      value = argv[++i];
    }
    if (d != nullptr) {
      if (!parse_duration(value, *d)) {
        a.error = fmt::format("{}: expected a duration such as 500ms, 10s or 1m, got \"{}\"", flag, value);
        return a;
      }
    } else {
      int n = -1;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n < 0 || n > 100) {
        a.error = fmt::format("--retries: expected a number from 0 to 100, got \"{}\"", value);
        return a;
      }
      a.config.retries = n;
    }
  }
  if (!a.help && a.urls.empty()) a.error = "no URL given";
  for (const auto& u : a.urls) {
    if (!u.starts_with("http://")) {
      a.error = fmt::format("\"{}\": only http:// URLs are supported", u);
      break;
    }
  }
  return a;
}

std::string usage(std::string_view program) {
  return fmt::format(
      "usage: {} [flags] URL...\n"
      "Fetches every URL concurrently; retries 5xx and connection errors with exponential\n"
      "backoff and jitter; Ctrl-C cancels every request in flight.\n"
      "  --timeout D          per URL, all attempts and backoff included (default 30s; 0: none)\n"
      "  --attempt-timeout D  per attempt (default 10s; 0: none)\n"
      "  --retries N          extra attempts after the first (default 3)\n"
      "  --backoff D          base delay before the first retry, doubling after (default 100ms)\n"
      "  --backoff-max D      cap on the base delay (default 5s)\n"
      "  --body               print each response body on stdout\n"
      "Exit status: 0 if every URL answered 2xx/3xx, 1 otherwise, 130 after Ctrl-C, 2 bad usage.\n",
      program);
}

}  // namespace http_client
