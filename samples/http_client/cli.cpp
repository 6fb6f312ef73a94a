// http_client's flags (cli.hpp).
#include "cli.hpp"

#include <charconv>

#include <fmt/format.h>

#include "common/duration.hpp"
#include "common/flags.hpp"

namespace http_client {

Args parse_args(int argc, const char* const* argv) {
  Args a;
  samples::FlagReader r(argc, argv);
  while (r.next()) {
    const std::string_view flag = r.arg();
    if (!r.is_flag()) {
      a.urls.emplace_back(flag);
      continue;
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
    const std::optional<std::string_view> value = r.value();
    if (!value) {
      a.error = r.missing_value();
      return a;
    }
    if (d != nullptr) {
      std::string err;
      const std::optional<Duration> parsed = samples::parse_flag_duration(*value, &err);
      if (!parsed) {
        a.error = fmt::format("{}: {} (expected a duration such as 500ms, 10s or 1m)", flag, err);
        return a;
      }
      *d = *parsed;
    } else {
      int n = -1;
      auto [p, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
      if (ec != std::errc() || p != value->data() + value->size() || n < 0 || n > 100) {
        a.error = fmt::format("--retries: expected a number from 0 to 100, got \"{}\"", *value);
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
