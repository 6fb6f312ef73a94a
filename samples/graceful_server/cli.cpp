// graceful_server's flags (cli.hpp).
#include "cli.hpp"

#include <charconv>

#include <fmt/format.h>

#include "common/duration.hpp"
#include "common/flags.hpp"

namespace graceful_server {

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
  samples::FlagReader r(argc, argv);
  while (r.next()) {
    const std::string_view flag = r.arg();
    if (flag == "-h" || flag == "--help") {
      a.help = true;
      continue;
    }
    const bool takes_value = flag == "--listen" || flag == "--shutdown-timeout" || flag == "--drain-delay";
    if (!takes_value) {
      a.error = fmt::format("unknown flag {}", flag);
      return a;
    }
    const std::optional<std::string_view> value = r.value();
    if (!value) {
      a.error = r.missing_value();
      return a;
    }
    if (flag == "--listen") {
      if (!parse_listen(*value, a.config)) {
        a.error = fmt::format("--listen: expected HOST:PORT or :PORT, got \"{}\"", *value);
        return a;
      }
    } else {
      std::string err;
      const std::optional<Duration> d = samples::parse_flag_duration(*value, &err);
      if (!d) {
        a.error = fmt::format("{}: {} (expected a duration such as 500ms, 10s or 1m)", flag, err);
        return a;
      }
      (flag == "--shutdown-timeout" ? a.config.shutdown_timeout : a.config.drain_delay) = *d;
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
