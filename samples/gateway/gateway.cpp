// The gateway's router and lifecycle (see gateway.hpp).
#include "gateway.hpp"

#include <filesystem>

#include <fmt/format.h>

#include <spindle/debug.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/select.hpp>

namespace gateway {

namespace http = spindle::http;
namespace patterns = spindle::patterns;

namespace {

http::Response text(int status, std::string body) {
  return http::Response::text(status, std::move(body));
}

int breaker_gauge(patterns::BreakerState s) {
  switch (s) {
    case patterns::BreakerState::closed: return 0;
    case patterns::BreakerState::half_open: return 1;
    case patterns::BreakerState::open: return 2;
  }
  return -1;
}

// Descriptors open in this process (a directory listing: through the blocking pool).
long open_fds() {
  return spindle::blocking([] {
    long n = 0;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      ++n;
    }
    return n - 1;  // the listing's own descriptor
  });
}

http::ClientOptions upstream_options(const Config& cfg) {
  http::ClientOptions o;
  o.timeout = cfg.upstream_timeout;
  o.max_retries = 0;        // the breaker, not retries, protects a failing backend
  o.retry_statuses = {};
  o.max_idle_per_host = 256;
  o.user_agent = "spindle-gateway/0.1";
  return o;
}

}  // namespace

Gateway::Gateway(Config cfg, const patterns::Clock* clock, std::optional<EventLog::Target> log)
    : cfg_(std::move(cfg)),
      clock_(patterns::clock_or_system(clock)),
      started_at_(clock_.now()),
      log_(log ? std::move(*log) : EventLog::Target::from_flag(cfg_.log)),
      limiter_(cfg_.rate, cfg_.burst, cfg_.idle_ttl, clock_),
      client_(upstream_options(cfg_)) {}

Gateway::~Gateway() {
  if (server_) server_->close();
  stop_sweeper_();
  if (running_) wg_.wait();
  log_.close();
}

std::string Gateway::url(std::string_view path) const {
  return fmt::format("http://127.0.0.1:{}{}", port_, path);
}

Backend* Gateway::backend(std::string_view name) {
  auto it = backends_.find(name);
  return it == backends_.end() ? nullptr : it->second.get();
}

http::ServerStats Gateway::server_stats() const {
  return server_ ? server_->stats() : http::ServerStats{};
}

std::string Gateway::start() {
  if (std::string err = log_.start(); !err.empty()) return err;
  std::vector<BackendSpec> specs = cfg_.backends;
  if (cfg_.demo) {
    demo_ = std::make_unique<DemoBackends>(clock_, cfg_.demo_slow_delay);
    if (std::string err = demo_->start(); !err.empty()) {
      auto [ctx, cancel] = spindle::with_timeout(spindle::background(), std::chrono::seconds(1));
      (void)demo_->shutdown(ctx);
      log_.close();
      return err;
    }
    for (BackendSpec& s : demo_->specs()) specs.push_back(std::move(s));
  }
  for (BackendSpec& s : specs) {
    const std::string name = s.name;
    backends_.emplace(name, std::make_unique<Backend>(std::move(s), cfg_, ProxyDeps{client_, clock_, log_, metrics_}));
  }

  http::ServerOptions so;
  so.log = [this](std::string_view msg) { log_.emit("http", {{"msg", msg}}); };
  server_ = std::make_unique<http::Server>(
      [this](const http::Request& req, const spindle::Context& ctx) { return handle(req, ctx); }, std::move(so));
  auto [ln, err] = spindle::net::listen(cfg_.listen_host, cfg_.listen_port);
  if (err) {
    std::string msg = fmt::format("listen on {}:{}: {}", cfg_.listen_host, cfg_.listen_port, err.message());
    if (demo_) {
      auto [ctx, cancel] = spindle::with_timeout(spindle::background(), std::chrono::seconds(1));
      (void)demo_->shutdown(ctx);
    }
    log_.close();
    return msg;
  }
  port_ = ln.port();
  running_ = true;
  wg_.go([this, ln] { (void)server_->serve(ln); });
  if (cfg_.sweep_interval.count() > 0) {
    auto [ctx, cancel] = spindle::with_cancel(spindle::background());
    stop_sweeper_ = std::move(cancel);
    wg_.go([this, ctx = ctx] { sweeper(ctx); });
  }

  nlohmann::json backends = nlohmann::json::object();
  for (const auto& [name, b] : backends_) backends[name] = b->url();
  log_.emit("start", {{"listen", fmt::format("{}:{}", cfg_.listen_host, port_)},
                      {"rate", cfg_.rate},
                      {"burst", cfg_.burst},
                      {"idle_ttl_ms", std::chrono::duration_cast<std::chrono::milliseconds>(limiter_.idle_ttl()).count()},
                      {"backends", backends}});
  return "";
}

std::error_code Gateway::shutdown(std::chrono::nanoseconds timeout) {
  if (!running_) return {};
  const auto t0 = spindle::Clock::now();
  log_.emit("shutdown", {{"timeout_ms", std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()},
                         {"in_flight", metrics_.in_flight.load()}});
  std::error_code result;
  {
    auto [ctx, cancel] = spindle::with_timeout(spindle::background(), timeout);
    result = server_->shutdown(ctx);
  }
  stop_sweeper_();
  wg_.wait();  // serve() returned (server_closed) and the sweeper is gone
  running_ = false;
  if (demo_) {
    // The gateway's requests are done, so the demo backends are idle; bound it anyway.
    auto [ctx, cancel] = spindle::with_timeout(spindle::background(), std::chrono::seconds(2));
    (void)demo_->shutdown(ctx);
  }
  client_.close_idle_connections();
  log_.emit("stopped", {{"graceful", !result},
                        {"error", result ? result.message() : ""},
                        {"requests", metrics_.requests.sum()},
                        {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(spindle::Clock::now() - t0).count()}});
  log_.close();
  return result;
}

void Gateway::sweeper(spindle::Context ctx) {
  for (;;) {
    patterns::ClockTimer t = clock_.timer(cfg_.sweep_interval);
    if (spindle::select(spindle::case_recv(t.C()), spindle::case_recv(ctx.done())) == 1) return;
    (void)sweep();
  }
}

std::size_t Gateway::sweep() {
  const std::size_t n = limiter_.evict_idle();
  if (n != 0) {
    log_.emit("evict", {{"clients", n}, {"tracked", limiter_.stats().keys}});
  }
  return n;
}

http::Response Gateway::handle(const http::Request& req, const spindle::Context& ctx) {
  const auto t0 = spindle::Clock::now();
  metrics_.in_flight.fetch_add(1, std::memory_order_relaxed);
  struct Leave {
    std::atomic<std::int64_t>& n;
    ~Leave() { n.fetch_sub(1, std::memory_order_relaxed); }
  } leave{metrics_.in_flight};
  std::string request_id(req.headers.get("X-Request-ID"));
  if (request_id.empty()) request_id = fmt::format("gw-{}", next_id_.fetch_add(1, std::memory_order_relaxed) + 1);
  std::string route_label = "other";
  std::string client;
  http::Response resp = route(req, ctx, route_label, request_id, client);
  resp.headers.set("X-Request-ID", request_id);
  metrics_.requests.inc({route_label, std::to_string(resp.status)});
  if (log_.enabled()) {
    nlohmann::json f = {{"id", request_id},
                        {"method", req.method},
                        {"path", req.target},
                        {"route", route_label},
                        {"status", resp.status},
                        {"ms", std::chrono::duration<double, std::milli>(spindle::Clock::now() - t0).count()}};
    if (!client.empty()) f["client"] = client;
    if (const std::string* d = resp.headers.find("X-Gateway-Degraded")) f["degraded"] = *d;
    log_.emit("request", std::move(f));
  }
  return resp;
}

http::Response Gateway::route(const http::Request& req, const spindle::Context& ctx, std::string& route_label,
                              const std::string& request_id, std::string& client) {
  const std::string_view path = req.path();
  if (path.starts_with("/api/")) {
    std::string_view rest = path.substr(5);
    const auto slash = rest.find('/');
    const std::string_view name = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
    Backend* b = backend(name);
    route_label = b != nullptr ? fmt::format("/api/{}", name) : "/api/?";
    client = ClientLimiter::client_key(req);
    const spindle::TimePoint now = clock_.now();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_at_).count();
    std::int64_t unset = -1;
    (void)first_api_ns_.compare_exchange_strong(unset, ns, std::memory_order_relaxed);
    for (std::int64_t last = last_api_ns_.load(std::memory_order_relaxed);
         last < ns && !last_api_ns_.compare_exchange_weak(last, ns, std::memory_order_relaxed);) {
    }
    const ClientLimiter::Decision d = limiter_.allow(client);
    if (!d.allowed) {
      metrics_.limited.inc({route_label});
      const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d.retry_after).count();
      log_.emit("limit", {{"client", client}, {"route", route_label}, {"retry_after_ms", ms}, {"id", request_id}});
      http::Response r = text(429, "rate limit exceeded\n");
      r.headers.set("Retry-After", std::to_string(std::max<std::int64_t>(1, (ms + 999) / 1000)));
      return r;
    }
    if (b == nullptr) return text(404, fmt::format("no backend '{}'\n", name));
    return b->forward(req, rest, ctx, request_id);
  }
  if (path == "/metrics") {
    route_label = "/metrics";
    if (req.method != "GET") return text(405, "method not allowed\n");
    http::Response r = text(200, render_metrics());
    r.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return r;
  }
  if (path == "/debug/fibers") {
    route_label = "/debug/fibers";
    if (req.method != "GET") return text(405, "method not allowed\n");
    return text(200, spindle::fiber_dump());
  }
  if (path == "/healthz") {
    route_label = "/healthz";
    return text(200, "ok\n");
  }
  if (path.starts_with("/admin/")) return admin(req, route_label);
  return text(404, "not found\n");
}

http::Response Gateway::admin(const http::Request& req, std::string& route_label) {
  const std::string_view path = req.path();
  route_label = "/admin";
  if (req.method != "POST") return text(405, "admin endpoints take POST\n");
  if (path == "/admin/close-idle") {
    client_.close_idle_connections();
    return text(200, "closed idle upstream connections\n");
  }
  // /admin/backends/<name>/fail?on=1|0
  constexpr std::string_view kPrefix = "/admin/backends/";
  if (path.starts_with(kPrefix) && path.ends_with("/fail")) {
    const std::string_view name = path.substr(kPrefix.size(), path.size() - kPrefix.size() - 5);
    const std::string_view q = req.query();
    bool on;
    if (q == "on=1" || q == "on=true") on = true;
    else if (q == "on=0" || q == "on=false") on = false;
    else return text(400, "want ?on=1 or ?on=0\n");
    if (!demo_) return text(404, "failure injection needs --demo\n");
    if (!demo_->set_failing(name, on)) return text(404, fmt::format("no demo backend '{}'\n", name));
    log_.emit("admin", {{"backend", name}, {"failing", on}});
    return text(200, fmt::format("{} failing={}\n", name, on ? 1 : 0));
  }
  return text(404, "not found\n");
}

std::string Gateway::render_metrics() {
  (void)sweep();  // the clients gauge reflects the clock now, as the breaker states do
  std::string out;
  metrics_.requests.render(out);
  metrics_.limited.render(out);
  metrics_.degraded.render(out);
  metrics_.upstream.render(out);
  metrics_.transitions.render(out);
  std::vector<GaugeSample> states;
  for (const auto& [name, b] : backends_) {
    states.push_back({{{"backend", name}}, static_cast<double>(breaker_gauge(b->breaker_state()))});
  }
  render_gauge(out, "gateway_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", states);
  render_gauge(out, "gateway_in_flight", "Requests being handled now (this scrape included).",
               {{{}, static_cast<double>(metrics_.in_flight.load())}});
  render_gauge(out, "gateway_fibers", "Live fibers in the runtime.",
               {{{}, static_cast<double>(spindle::runtime_stats().live_fibers)}});
  const auto ks = limiter_.stats();
  render_gauge(out, "gateway_clients", "Clients (rate-limit buckets) tracked now.", {{{}, static_cast<double>(ks.keys)}});
  out += fmt::format(
      "# HELP gateway_clients_evicted_total Idle clients forgotten.\n# TYPE gateway_clients_evicted_total counter\n"
      "gateway_clients_evicted_total {}\n",
      ks.evicted_idle + ks.evicted_capacity);
  const auto first = first_api_ns_.load(), last = last_api_ns_.load();
  render_gauge(out, "gateway_api_first_request_seconds", "Gateway-clock seconds since start of the first /api request.",
               {{{}, first < 0 ? -1.0 : static_cast<double>(first) / 1e9}});
  render_gauge(out, "gateway_api_last_request_seconds", "Gateway-clock seconds since start of the latest /api request.",
               {{{}, last < 0 ? -1.0 : static_cast<double>(last) / 1e9}});
  render_gauge(out, "process_open_fds", "Open file descriptors.", {{{}, static_cast<double>(open_fds())}});
  return out;
}

}  // namespace gateway
