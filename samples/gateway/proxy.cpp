// Backend: breaker + proxy call + last-good cache (see proxy.hpp).
#include "proxy.hpp"

#include <algorithm>
#include <array>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

namespace gateway {

namespace http = spindle::http;
namespace patterns = spindle::patterns;

namespace {

// Hop-by-hop fields (RFC 9110 7.6.1) are never forwarded; Host and Content-Length are set by
// whoever writes the next message.
bool hop_by_hop(std::string_view name) {
  static constexpr std::array<std::string_view, 10> kFields = {
      "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization",
      "TE",         "Trailer",    "Transfer-Encoding", "Upgrade",           "Content-Length"};
  return std::any_of(kFields.begin(), kFields.end(),
                     [&](std::string_view f) { return http::Headers::name_equals(f, name); });
}

}  // namespace

void ResponseCache::store(const std::string& key, const http::Response& r, spindle::TimePoint now) {
  if (capacity_ == 0) return;
  std::lock_guard lock(mu_);
  if (auto it = map_.find(key); it != map_.end()) {
    order_.erase(it->second.pos);
    map_.erase(it);
  }
  order_.push_front(key);
  map_.emplace(key, Slot{Entry{r, now}, order_.begin()});
  while (map_.size() > capacity_) {
    map_.erase(order_.back());
    order_.pop_back();
  }
}

std::optional<ResponseCache::Entry> ResponseCache::lookup(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second.entry;
}

std::size_t ResponseCache::size() {
  std::lock_guard lock(mu_);
  return map_.size();
}

Backend::Backend(BackendSpec spec, const Config& cfg, ProxyDeps deps)
    : spec_(std::move(spec)),
      deps_(deps),
      cooldown_(cfg.breaker_cooldown),
      breaker_({.name = spec_.name,
                .max_requests = 1,
                .timeout = cfg.breaker_cooldown,
                .ready_to_trip = patterns::trip::consecutive_failures(cfg.breaker_failures),
                .on_state_change =
                    [this](std::string_view name, patterns::BreakerState from, patterns::BreakerState to) {
                      deps_.metrics.transitions.inc({std::string(name), patterns::to_string(to)});
                      deps_.log.emit("breaker", {{"backend", name},
                                                 {"from", patterns::to_string(from)},
                                                 {"to", patterns::to_string(to)}});
                    },
                .clock = &deps.clock}),
      cache_(cfg.cache_entries) {
  auto url = parse_http_url(spec_.url);
  if (!url) throw std::invalid_argument("gateway: bad backend url " + spec_.url);
  url_ = std::move(*url);
}

http::Response Backend::forward(const http::Request& req, std::string_view rest, const spindle::Context& ctx,
                                std::string_view request_id) {
  std::string target = url_.prefix;
  target += rest.empty() ? std::string_view("/") : rest;
  if (!req.query().empty()) {
    target += '?';
    target += req.query();
  }
  const bool cacheable = req.method == "GET";

  patterns::Result<patterns::CircuitBreaker::Ticket> ticket = breaker_.allow();
  if (!ticket) {
    deps_.metrics.upstream.inc({spec_.name, "rejected"});
    return degrade(target, cacheable,
                   ticket.error() == patterns::errc::circuit_open ? "breaker open" : "breaker half-open, probe busy",
                   0, request_id);
  }

  http::Request up;
  up.method = req.method;
  up.target = target;
  up.body = req.body;
  for (const auto& [name, value] : req.headers) {
    if (!hop_by_hop(name) && !http::Headers::name_equals(name, "Host")) up.headers.add(name, value);
  }
  std::string_view peer = req.remote_address;
  if (const auto colon = peer.rfind(':'); colon != std::string_view::npos) peer = peer.substr(0, colon);
  if (const std::string* xff = req.headers.find("X-Forwarded-For"); xff != nullptr) {
    up.headers.set("X-Forwarded-For", fmt::format("{}, {}", *xff, peer));
  } else {
    up.headers.set("X-Forwarded-For", std::string(peer));
  }
  up.headers.set("X-Request-ID", std::string(request_id));

  auto [resp, err] = deps_.client.request(ctx, url_.host, url_.port, std::move(up));
  if (err && ctx.err()) {
    // Our own request ended (client gone, forced shutdown): says nothing about the backend.
    ticket->exclude();
    return http::Response::text(499, "client closed request\n");
  }
  if (err || resp.status >= 500) {
    ticket->failure();
    deps_.metrics.upstream.inc({spec_.name, "error"});
    return degrade(target, cacheable,
                   err ? fmt::format("upstream error: {}", err.message())
                       : fmt::format("upstream status {}", resp.status),
                   err ? 0 : resp.status, request_id);
  }
  ticket->success();
  deps_.metrics.upstream.inc({spec_.name, "ok"});

  http::Response out;
  out.status = resp.status;
  out.body = std::move(resp.body);
  for (const auto& [name, value] : resp.headers) {
    if (!hop_by_hop(name)) out.headers.add(name, value);
  }
  out.headers.set("X-Gateway-Backend", spec_.name);
  if (cacheable && out.status == 200) cache_.store(target, out, deps_.clock.now());
  return out;
}

http::Response Backend::degrade(const std::string& cache_key, bool cacheable, std::string_view reason,
                                int upstream_status, std::string_view request_id) {
  if (cacheable) {
    if (auto hit = cache_.lookup(cache_key)) {
      http::Response r = std::move(hit->response);
      const auto age = std::chrono::duration_cast<std::chrono::seconds>(deps_.clock.now() - hit->stored);
      r.headers.set("X-Gateway-Degraded", "cached");
      r.headers.set("Age", std::to_string(std::max<std::int64_t>(0, age.count())));
      deps_.metrics.degraded.inc({spec_.name, "cached"});
      deps_.log.emit("degraded", {{"backend", spec_.name}, {"kind", "cached"}, {"target", cache_key},
                                  {"reason", reason}, {"request_id", request_id}});
      return r;
    }
  }
  nlohmann::json body = {{"error", "backend unavailable"}, {"backend", spec_.name}, {"reason", reason},
                         {"degraded", "fallback"}};
  if (upstream_status != 0) body["upstream_status"] = upstream_status;
  http::Response r;
  r.status = 503;
  r.body = body.dump() + "\n";
  r.headers.set("Content-Type", "application/json");
  r.headers.set("X-Gateway-Degraded", "fallback");
  r.headers.set("X-Gateway-Backend", spec_.name);
  r.headers.set("Retry-After", std::to_string(std::max<std::int64_t>(
                                   1, std::chrono::duration_cast<std::chrono::seconds>(cooldown_).count())));
  deps_.metrics.degraded.inc({spec_.name, "fallback"});
  deps_.log.emit("degraded", {{"backend", spec_.name}, {"kind", "fallback"}, {"target", cache_key},
                              {"reason", reason}, {"request_id", request_id}});
  return r;
}

}  // namespace gateway
