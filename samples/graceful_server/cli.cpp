// graceful_server's flags (cli.hpp).
#include "cli.hpp"

#include <charconv>
#include <cmath>

#include <fmt/format.h>

namespace graceful_server {

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
  } else if (unit == "us") {
    seconds = value / 1e6;
  } else if (unit == "m") {
    seconds = value * 60;
  } else if (unit == "h") {
    seconds = value * 3600;
  } else {
    return false;
  }
  if (seconds > 1e9) return false;  // beyond any sensible timeout (and Duration's range)
  out = std::chrono::duration_cast<Duration>(std::chrono::duration<double>(seconds));
  return true;
}

std::string format_duration(Duration d) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(d).count();
  if (ms == 0) return "0s";
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms % 60000 == 0) return fmt::format("{}m", ms / 60000);
  if (ms % 1000 == 0) return fmt::format("{}s", ms / 1000);
  return fmt::format("{:.3g}s", static_cast<double>(ms) / 1000);
}

namespace {

bool parse_listen(std::string_view s, Config& cfg) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = s.substr(0, colon);
  const std::string_view port = s.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned value = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || p != port.data() + port.size() || port.empty() || value > 65535) return false;
  cfg.host = host.empty() ? "0.0.0.0" : std::string(host);
  cfg.port = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace

Args parse_args(int argc, const char* const* argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
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
    const bool takes_value = flag == "--listen" || flag == "--shutdown-timeout" || flag == "--drain-delay";
    if (!takes_value) {
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
    if (flag == "--listen") {
      if (!parse_listen(value, a.config)) {
        a.error = fmt::format("--listen: expected HOST:PORT or :PORT, got \"{}\"", value);
        return a;
      }
    } else {
      Duration& d = flag == "--shutdown-timeout" ? a.config.shutdown_timeout : a.config.drain_delay;
      if (!parse_duration(value, d)) {
        a.error = fmt::format("{}: expected a duration such as 500ms, 10s or 1m, got \"{}\"", flag, value);
        return a;
      }
    }
  }
  return a;
}

std::string usage(std::string_view program) {
  return fmt::format(
      "usage: {} [--listen HOST:PORT] [--shutdown-timeout D] [--drain-delay D]\n"
      "  --listen HOST:PORT      address to serve on (default 127.0.0.1:8080; :PORT for all)\n"
      "  --shutdown-timeout D    how long in-flight requests may take after SIGINT/SIGTERM\n"
      "                          before their connections are closed (default 10s)\n"
      "  --drain-delay D         after the signal, answer /healthz with 503 for D before\n"
      "                          refusing new connections (default 0)\n"
      "routes: /  /slow?ms=N  /healthz. A second SIGINT/SIGTERM forces the shutdown.\n",
      program);
}

}  // namespace graceful_server
