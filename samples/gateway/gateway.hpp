// Gateway: the rate-limited API gateway, minus main(): routing, the per-client limiter, the
// backends (breaker + cache), metrics, the event log, the idle-client sweeper, demo backends,
// and graceful shutdown. main.cpp parses flags, calls start(), waits for SIGINT/SIGTERM and
// calls shutdown(); the integration test does the same on loopback with a ManualClock.
//
// Routes:
//   /api/<backend>/<path...>      rate-limited (429 past the client's bucket), then proxied
//   GET  /metrics                 Prometheus text (metrics.hpp); sweeps idle clients first
//   GET  /debug/fibers            spindle's fiber dump (text)
//   GET  /healthz                 "ok"
//   POST /admin/backends/<name>/fail?on=1|0   demo backends only: inject or heal failures
//   POST /admin/close-idle        drop the pooled upstream connections
// Only /api/ is rate-limited: the operational endpoints must stay reachable when a client is
// over its limit. Every response carries X-Request-ID (the client's, else "gw-<n>").
//
// Time: the limiter, the breakers, the cache's Age and the slow demo backend all read the one
// injected patterns::Clock (system_clock() in the program). Upstream and shutdown timeouts are
// real time (contexts), as they bound real waits.
//
// Thread-safety: handle() runs on any number of connection fibers at once. start() and
// shutdown() are called by the owner, from one fiber, once each. Lifetime: shutdown() must have
// returned before the Gateway is destroyed (the destructor force-closes as a last resort).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>

#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/http/server.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/waitgroup.hpp>

#include "config.hpp"
#include "demo.hpp"
#include "limiter.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "proxy.hpp"

namespace gateway {

class Gateway {
 public:
  // clock: null for the system clock. log: where events go; nullopt: from cfg.log.
  explicit Gateway(Config cfg, const spindle::patterns::Clock* clock = nullptr,
                   std::optional<EventLog::Target> log = std::nullopt);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Opens the log, starts the demo backends (--demo), builds the backends, listens on
  // cfg.listen_host:listen_port (0: ephemeral) and serves in a fiber; starts the idle sweeper.
  // Returns "" or an error message (then nothing is left running). Call in a fiber.
  [[nodiscard]] std::string start();

  // Graceful shutdown: stop accepting, let in-flight requests finish within `timeout` (then
  // force-close them), stop the sweeper and the demo backends, flush and close the log.
  // Returns {} when everything finished in time, else the deadline error.
  std::error_code shutdown(std::chrono::nanoseconds timeout);

  // The router (what the server calls for every request).
  [[nodiscard]] spindle::http::Response handle(const spindle::http::Request& req, const spindle::Context& ctx);

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::string url(std::string_view path) const;
  [[nodiscard]] std::string render_metrics();
  [[nodiscard]] Metrics& metrics() noexcept { return metrics_; }
  [[nodiscard]] ClientLimiter& limiter() noexcept { return limiter_; }
  [[nodiscard]] DemoBackends* demo() noexcept { return demo_.get(); }
  [[nodiscard]] Backend* backend(std::string_view name);
  [[nodiscard]] const Config& config() const noexcept { return cfg_; }
  [[nodiscard]] spindle::http::ServerStats server_stats() const;

 private:
  spindle::http::Response route(const spindle::http::Request& req, const spindle::Context& ctx,
                                std::string& route_label, const std::string& request_id, std::string& client);
  spindle::http::Response admin(const spindle::http::Request& req, std::string& route_label);
  void sweeper(spindle::Context ctx);
  std::size_t sweep();

  Config cfg_;
  const spindle::patterns::Clock& clock_;
  spindle::TimePoint started_at_;
  EventLog log_;
  Metrics metrics_;
  ClientLimiter limiter_;
  spindle::http::Client client_;
  std::unique_ptr<DemoBackends> demo_;
  std::map<std::string, std::unique_ptr<Backend>, std::less<>> backends_;
  std::unique_ptr<spindle::http::Server> server_;
  std::uint16_t port_ = 0;
  spindle::WaitGroup wg_;  // the serve fiber and the sweeper
  spindle::CancelFunc stop_sweeper_;
  std::atomic<std::uint64_t> next_id_{0};
  std::atomic<std::int64_t> first_api_ns_{-1};
  std::atomic<std::int64_t> last_api_ns_{-1};
  bool running_ = false;
};

}  // namespace gateway
