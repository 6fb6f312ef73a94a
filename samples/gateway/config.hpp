// The gateway's configuration: every flag of the command line as one plain value, and the parser
// that fills it. Parsing is a pure function (no I/O, no runtime), so the tests call it directly.
//
// Invariants of a Config that parse_args returned: rate > 0, burst >= 1, backend names unique,
// non-empty and free of '/', every backend URL "http://host:port[/prefix]" with no trailing '/'.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gateway {

struct BackendSpec {
  std::string name;  // the route is /api/<name>/...
  std::string url;   // "http://127.0.0.1:9001" or "http://host:port/base"
};

struct Config {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  double rate = 10;              // tokens per second, per client
  int burst = 20;                // bucket size, per client
  std::chrono::nanoseconds idle_ttl{};   // forget a client idle this long; 0: burst/rate (lossless)
  std::chrono::nanoseconds sweep_interval = std::chrono::seconds(10);  // idle sweep; 0: none
  std::vector<BackendSpec> backends;
  bool demo = false;             // start demo backends (fast, slow, flaky) on loopback
  std::chrono::nanoseconds shutdown_timeout = std::chrono::seconds(10);
  std::string log = "-";         // "-": stderr, "off": nothing, else a file (appended)
  std::uint32_t breaker_failures = 3;                        // consecutive failures to open
  std::chrono::nanoseconds breaker_cooldown = std::chrono::seconds(5);  // open -> half-open
  std::chrono::nanoseconds upstream_timeout = std::chrono::seconds(5);  // one backend call
  std::size_t cache_entries = 1024;  // last-good answers kept (GET, 200), least recent dropped
  std::chrono::nanoseconds demo_slow_delay = std::chrono::milliseconds(200);
};

struct ParseResult {
  std::optional<Config> config;  // empty on error or --help
  std::string error;             // set on error
  bool help = false;
};

// Parses argv (argv[0] is skipped). Flags take "--flag value" or "--flag=value".
[[nodiscard]] ParseResult parse_args(int argc, const char* const* argv);
[[nodiscard]] ParseResult parse_args(const std::vector<std::string>& args);

// The usage text (flags and defaults).
[[nodiscard]] std::string usage();

// Splits "http://host:port[/prefix]" (port defaults to 80). nullopt if malformed.
struct UrlParts {
  std::string host;
  std::uint16_t port = 80;
  std::string prefix;  // "" or "/base" (no trailing '/')
};
[[nodiscard]] std::optional<UrlParts> parse_http_url(std::string_view url);

}  // namespace gateway
