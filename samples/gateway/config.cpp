// Flag parsing for the gateway (see config.hpp).
#include "config.hpp"

#include <charconv>
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "common/duration.hpp"

namespace gateway {
namespace {

std::optional<double> parse_double(std::string_view s) {
  if (s.empty()) return std::nullopt;
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

template <class Int>
std::optional<Int> parse_int(std::string_view s) {
  if (s.empty()) return std::nullopt;
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// "host:port", "[v6]:port" or ":port".
bool parse_listen(std::string_view s, Config& c) {
  const auto colon = s.rfind(':');
  if (colon == std::string_view::npos) return false;
  std::string_view host = s.substr(0, colon);
  auto port = parse_int<std::uint16_t>(s.substr(colon + 1));
  if (!port) return false;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  c.listen_host = host.empty() ? "0.0.0.0" : std::string(host);
  c.listen_port = *port;
  return true;
}

}  // namespace

std::optional<UrlParts> parse_http_url(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return std::nullopt;
  url.remove_prefix(kScheme.size());
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  UrlParts out;
  if (slash != std::string_view::npos) {
    std::string_view prefix = url.substr(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.remove_suffix(1);
    if (prefix.find_first_of("?#") != std::string_view::npos) return std::nullopt;
    out.prefix = std::string(prefix);
  }
  const auto colon = authority.rfind(':');
  const auto bracket = authority.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    auto port = parse_int<std::uint16_t>(authority.substr(colon + 1));
    if (!port || *port == 0) return std::nullopt;
    out.port = *port;
    authority = authority.substr(0, colon);
  }
  if (authority.size() >= 2 && authority.front() == '[' && authority.back() == ']') {
    authority = authority.substr(1, authority.size() - 2);
  }
  if (authority.empty()) return std::nullopt;
  out.host = std::string(authority);
  return out;
}

std::string usage() {
  const Config d;
  return fmt::format(
      "usage: gateway [flags]\n"
      "  --listen HOST:PORT         address to serve on (default {}:{})\n"
      "  --rate R                   tokens per second per client (default {})\n"
      "  --burst N                  bucket size per client (default {})\n"
      "  --idle-ttl DUR             forget clients idle this long (default burst/rate: lossless)\n"
      "  --backend NAME=URL         proxy /api/NAME/... to URL (repeatable)\n"
      "  --demo                     start demo backends fast, slow, flaky on loopback\n"
      "  --shutdown-timeout DUR     graceful shutdown bound on SIGINT/SIGTERM (default 10s)\n"
      "  --log -|off|PATH           JSON event log: stderr, nothing, or a file (default -)\n"
      "  --breaker-failures N       consecutive failures that open a breaker (default {})\n"
      "  --breaker-cooldown DUR     open -> half-open after this (default 5s)\n"
      "  --upstream-timeout DUR     bound on one backend call (default 5s)\n"
      "  --cache-entries N          last-good answers kept for degradation (default {})\n"
      "  --demo-slow-delay DUR      the slow demo backend's delay (default 200ms)\n"
      "Durations: 250ms, 5s, 2m, or a number of seconds.\n",
      d.listen_host, d.listen_port, d.rate, d.burst, d.breaker_failures, d.cache_entries);
}

ParseResult parse_args(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_args(args);
}

ParseResult parse_args(const std::vector<std::string>& args) {
  Config c;
  ParseResult r;
  auto fail = [&](std::string msg) {
    r.error = std::move(msg);
    return r;
  };
  std::set<std::string> names;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i];
    std::optional<std::string> inline_value;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      inline_value = flag.substr(eq + 1);
      flag.resize(eq);
    }
    if (flag == "-h" || flag == "--help") {
      r.help = true;
      return r;
    }
    if (flag == "--demo") {
      if (inline_value) return fail("--demo takes no value");
      c.demo = true;
      continue;
    }
    static const std::set<std::string, std::less<>> kValued = {
        "--listen", "--rate", "--burst", "--idle-ttl", "--backend", "--shutdown-timeout", "--log",
        "--breaker-failures", "--breaker-cooldown", "--upstream-timeout", "--cache-entries", "--demo-slow-delay"};
    if (kValued.count(flag) == 0) return fail(fmt::format("unknown flag '{}' (try --help)", flag));
    std::string value;
    if (inline_value) {
      value = *inline_value;
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return fail(fmt::format("{} needs a value", flag));
    }
    auto duration = [&](std::chrono::nanoseconds& out, bool allow_zero) -> bool {
      auto d = samples::parse_flag_duration(value);
      if (!d || (!allow_zero && d->count() == 0)) return false;
      out = *d;
      return true;
    };
    if (flag == "--listen") {
      if (!parse_listen(value, c)) return fail(fmt::format("--listen: want HOST:PORT, got '{}'", value));
    } else if (flag == "--rate") {
      auto v = parse_double(value);
      if (!v || *v <= 0) return fail(fmt::format("--rate: want a positive number, got '{}'", value));
      c.rate = *v;
    } else if (flag == "--burst") {
      auto v = parse_int<int>(value);
      if (!v || *v < 1) return fail(fmt::format("--burst: want an integer >= 1, got '{}'", value));
      c.burst = *v;
    } else if (flag == "--idle-ttl") {
      if (!duration(c.idle_ttl, true)) return fail(fmt::format("--idle-ttl: bad duration '{}'", value));
    } else if (flag == "--backend") {
      const auto eq = value.find('=');
      if (eq == std::string::npos || eq == 0) return fail(fmt::format("--backend: want NAME=URL, got '{}'", value));
      BackendSpec b{value.substr(0, eq), value.substr(eq + 1)};
      if (b.name.find('/') != std::string::npos) return fail(fmt::format("--backend: name '{}' contains '/'", b.name));
      auto url = parse_http_url(b.url);
      if (!url) return fail(fmt::format("--backend {}: want http://host:port[/prefix], got '{}'", b.name, b.url));
      while (b.url.ends_with('/')) b.url.pop_back();
      if (!names.insert(b.name).second) return fail(fmt::format("--backend: '{}' given twice", b.name));
      c.backends.push_back(std::move(b));
    } else if (flag == "--shutdown-timeout") {
      if (!duration(c.shutdown_timeout, true)) return fail(fmt::format("--shutdown-timeout: bad duration '{}'", value));
    } else if (flag == "--log") {
      if (value.empty()) return fail("--log: want -, off or a path");
      c.log = value;
    } else if (flag == "--breaker-failures") {
      auto v = parse_int<std::uint32_t>(value);
      if (!v || *v < 1) return fail(fmt::format("--breaker-failures: want an integer >= 1, got '{}'", value));
      c.breaker_failures = *v;
    } else if (flag == "--breaker-cooldown") {
      if (!duration(c.breaker_cooldown, false)) return fail(fmt::format("--breaker-cooldown: bad duration '{}'", value));
    } else if (flag == "--upstream-timeout") {
      if (!duration(c.upstream_timeout, false)) return fail(fmt::format("--upstream-timeout: bad duration '{}'", value));
    } else if (flag == "--cache-entries") {
      auto v = parse_int<std::size_t>(value);
      if (!v) return fail(fmt::format("--cache-entries: want an integer >= 0, got '{}'", value));
      c.cache_entries = *v;
    } else if (flag == "--demo-slow-delay") {
      if (!duration(c.demo_slow_delay, true)) return fail(fmt::format("--demo-slow-delay: bad duration '{}'", value));
    } else {
      return fail(fmt::format("unknown flag '{}' (try --help)", flag));
    }
  }
  if (c.demo) {
    for (const char* n : {"fast", "slow", "flaky"}) {
      if (names.count(n) != 0) return fail(fmt::format("--backend '{}' clashes with a --demo backend", n));
    }
  }
  if (c.backends.empty() && !c.demo) return fail("no backends: give --backend NAME=URL or --demo");
  r.config = std::move(c);
  return r;
}

}  // namespace gateway
