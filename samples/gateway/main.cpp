// gateway: a rate-limited API gateway on spindle (per-client token buckets, a circuit breaker
// per backend, cached/fallback degradation, JSON event logs, /metrics, /debug/fibers).
// Usage: gateway [--listen HOST:PORT] [--rate R] [--burst N] [--backend NAME=URL]... [--demo]
//        [--shutdown-timeout DUR] [--log -|off|PATH]   (gateway --help lists every flag)
// It serves until SIGINT or SIGTERM, then shuts down gracefully: in-flight requests finish
// within --shutdown-timeout. Exit status: 0 after a clean shutdown, 1 when the in-flight
// requests had to be cut off, 2 for bad flags or a failed start.
#include <csignal>
#include <cstdio>
#include <string>

#include <fmt/format.h>

#include <spindle/net/signal.hpp>
#include <spindle/runtime.hpp>

#include "config.hpp"
#include "gateway.hpp"

int main(int argc, char** argv) {
  gateway::ParseResult parsed = gateway::parse_args(argc, argv);
  if (parsed.help) {
    fmt::print("{}", gateway::usage());
    return 0;
  }
  if (!parsed.config) {
    fmt::print(stderr, "gateway: {}\n{}", parsed.error, gateway::usage());
    return 2;
  }
  const gateway::Config cfg = *parsed.config;
  return spindle::run([&]() -> int {
    // Subscribe before starting, so a signal during start-up is not lost.
    auto sigs = spindle::signal::notify({SIGINT, SIGTERM});
    gateway::Gateway gw(cfg);
    if (std::string err = gw.start(); !err.empty()) {
      spindle::signal::stop(sigs);
      fmt::print(stderr, "gateway: {}\n", err);
      return 2;
    }
    fmt::print(stdout, "gateway listening on http://{}:{}/ (rate {}/s, burst {} per client)\n", cfg.listen_host,
               gw.port(), cfg.rate, cfg.burst);
    for (const char* name : {"fast", "slow", "flaky"}) {
      if (gateway::Backend* b = gw.backend(name); b != nullptr && gw.demo() != nullptr) {
        fmt::print(stdout, "  demo backend {:5} {}  -> {}\n", name, b->url(), gw.url(fmt::format("/api/{}/hello", name)));
      }
    }
    for (const auto& b : cfg.backends) fmt::print(stdout, "  backend {} {}\n", b.name, b.url);
    std::fflush(stdout);

    const int sig = *sigs.recv();
    spindle::signal::stop(sigs);  // a second Ctrl-C now ends the process at once
    fmt::print(stdout, "gateway: {} received, shutting down (up to {} ms)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
               std::chrono::duration_cast<std::chrono::milliseconds>(cfg.shutdown_timeout).count());
    std::fflush(stdout);
    const std::error_code ec = gw.shutdown(cfg.shutdown_timeout);
    const auto st = gw.server_stats();
    fmt::print(stdout, "gateway: stopped ({}), {} requests served\n", ec ? "in-flight requests cut off: " + ec.message() : "clean",
               st.requests);
    return ec ? 1 : 0;
  });
}
