// Metrics: the gateway's counters and gauges, rendered in the Prometheus text exposition format
// (version 0.0.4) for GET /metrics.
//
// Families (labels in braces):
//   gateway_requests_total{route,status}       every request handled, counted when its handler
//                                              returns (so a scrape does not count itself)
//   gateway_limited_total{route}               requests answered 429 by the per-client limiter
//   gateway_degraded_total{backend,kind}       answers served from cache or fallback
//   gateway_upstream_total{backend,result}     backend calls: ok, error, rejected (breaker)
//   gateway_breaker_transitions_total{backend,to}
//   gateway_breaker_state{backend}             0 closed, 1 half-open, 2 open (gauge)
//   gateway_in_flight                          requests inside the handler now (gauge)
//   gateway_fibers                             live fibers of the runtime (gauge)
//   gateway_clients / gateway_clients_evicted_total   limiter keys tracked / forgotten when idle
//   gateway_api_first_request_seconds, gateway_api_last_request_seconds: on the gateway's clock,
//     seconds since it started, of the first and latest /api request (the load run derives the
//     tokens the buckets could have granted from this span)
//   process_open_fds                           descriptors open in the process (gauge)
// Label sets are bounded: routes are fixed strings or /api/<configured backend>, statuses are
// HTTP codes.
//
// Thread-safety: every member may be called from any fiber concurrently (one spindle::Mutex per
// labelled family; gauges are atomics).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <spindle/mutex.hpp>

namespace gateway {

// A counter family with fixed label names.
class CounterVec {
 public:
  CounterVec(std::string name, std::string help, std::vector<std::string> labels);
  void inc(const std::vector<std::string>& values, std::uint64_t n = 1);
  [[nodiscard]] std::uint64_t get(const std::vector<std::string>& values) const;
  [[nodiscard]] std::uint64_t sum() const;
  void render(std::string& out) const;

 private:
  std::string name_, help_;
  std::vector<std::string> labels_;
  mutable spindle::Mutex mu_;
  std::map<std::vector<std::string>, std::uint64_t> values_;  // under mu_
};

// A gauge family: values set by the owner at render time.
struct GaugeSample {
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
};
void render_gauge(std::string& out, std::string_view name, std::string_view help,
                  const std::vector<GaugeSample>& samples);

// Escapes a label value (backslash, double quote, newline).
[[nodiscard]] std::string escape_label(std::string_view v);

struct Metrics {
  CounterVec requests{"gateway_requests_total", "Requests handled, by route and status.", {"route", "status"}};
  CounterVec limited{"gateway_limited_total", "Requests rejected by the per-client rate limit.", {"route"}};
  CounterVec degraded{"gateway_degraded_total", "Degraded answers (cached or fallback), by backend.",
                      {"backend", "kind"}};
  CounterVec upstream{"gateway_upstream_total", "Backend calls by result (ok, error, rejected by the breaker).",
                      {"backend", "result"}};
  CounterVec transitions{"gateway_breaker_transitions_total", "Circuit breaker state changes.", {"backend", "to"}};
  std::atomic<std::int64_t> in_flight{0};
};

// Parses one sample's value out of a Prometheus text body: `name{labels} value` with the labels
// exactly as rendered (e.g. R"(route="/api/fast",status="200")"), or `name value` for "".
// Returns -1 when absent. Used by the tests and handy for scripts.
[[nodiscard]] double scrape_value(std::string_view body, std::string_view name, std::string_view labels = "");

}  // namespace gateway
