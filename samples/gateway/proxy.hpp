// Backend: one upstream the gateway proxies /api/<name>/... to, behind a circuit breaker, with a
// cache of last-good answers for graceful degradation.
//
// forward() of one request:
//  1. ask the breaker (spindle::patterns::CircuitBreaker: opens after `breaker_failures`
//     consecutive failures, half-open after `breaker_cooldown` on the injected clock, one probe
//     closes it again). Rejected: degrade at once, the backend is not called;
//  2. call the backend with the shared http::Client (no retries: the breaker is the resilience
//     here, and retries would multiply the load on a backend that is already struggling),
//     bounded by upstream_timeout and by the request's context;
//  3. a transport error or a 5xx is a failure: degrade. Anything else is a success and is
//     passed through; a GET answered 200 is remembered as the last good answer for its target.
// Degrading: the last good answer for the same target, if any, marked
// "X-Gateway-Degraded: cached" (with Age, in seconds, on the gateway's clock); else a 503
// fallback with a small JSON body, marked "X-Gateway-Degraded: fallback". Each is logged
// (event "degraded") and counted. A call abandoned because the request's own context ended
// (client gone, shutdown deadline) is neither success nor failure for the breaker (excluded)
// and is answered 499 (nginx's "client closed request"; nobody reads it).
//
// Thread-safety: forward() may run on any number of fibers at once. Lifetime: a Backend must
// outlive the calls into it; the Client, Clock, EventLog and Metrics it refers to outlive it.
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/http/message.hpp>
#include <spindle/mutex.hpp>
#include <spindle/patterns/circuit_breaker.hpp>
#include <spindle/patterns/clock.hpp>

#include "config.hpp"
#include "log.hpp"
#include "metrics.hpp"

namespace gateway {

// Last-good answers by key, least recently stored dropped past `capacity` (0: no caching).
class ResponseCache {
 public:
  explicit ResponseCache(std::size_t capacity) : capacity_(capacity) {}
  struct Entry {
    spindle::http::Response response;
    spindle::TimePoint stored{};
  };
  void store(const std::string& key, const spindle::http::Response& r, spindle::TimePoint now);
  [[nodiscard]] std::optional<Entry> lookup(const std::string& key);
  [[nodiscard]] std::size_t size();

 private:
  std::size_t capacity_;
  spindle::Mutex mu_;
  std::list<std::string> order_;  // most recently stored first; under mu_
  struct Slot {
    Entry entry;
    std::list<std::string>::iterator pos;
  };
  std::unordered_map<std::string, Slot> map_;  // under mu_
};

struct ProxyDeps {
  spindle::http::Client& client;
  const spindle::patterns::Clock& clock;
  EventLog& log;
  Metrics& metrics;
};

class Backend {
 public:
  // spec.url must parse (parse_http_url); throws std::invalid_argument otherwise.
  Backend(BackendSpec spec, const Config& cfg, ProxyDeps deps);
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  // Proxies req to the backend; `rest` is the path after /api/<name> ("" or "/..."), the query
  // is req's. Blocks the calling fiber for the backend call.
  [[nodiscard]] spindle::http::Response forward(const spindle::http::Request& req, std::string_view rest,
                                                const spindle::Context& ctx, std::string_view request_id);

  [[nodiscard]] const std::string& name() const noexcept { return spec_.name; }
  [[nodiscard]] const std::string& url() const noexcept { return spec_.url; }
  [[nodiscard]] spindle::patterns::BreakerState breaker_state() { return breaker_.state(); }
  [[nodiscard]] spindle::patterns::BreakerStats breaker_stats() { return breaker_.stats(); }
  [[nodiscard]] std::size_t cached() { return cache_.size(); }

 private:
  spindle::http::Response degrade(const std::string& cache_key, bool cacheable, std::string_view reason,
                                  int upstream_status, std::string_view request_id);

  BackendSpec spec_;
  UrlParts url_;
  ProxyDeps deps_;
  std::chrono::nanoseconds cooldown_;
  spindle::patterns::CircuitBreaker breaker_;
  ResponseCache cache_;
};

}  // namespace gateway
