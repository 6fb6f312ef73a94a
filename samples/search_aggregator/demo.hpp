// Demo search backends: one spindle::http::Server per backend on 127.0.0.1 (ephemeral port),
// each answering GET /search?q=... after its latency with deterministic results, or failing.
//
//   DemoBackends demo;
//   demo.start({{"alpha", 10ms}, {"delta", 1s}, {"echo", 0ms, DemoMode::fail}});
//   Aggregator agg(demo.backends(), {...});
//   ...
//   demo.stop();   // graceful: waits for the handlers (stragglers end when their client goes)
//
// A handler waits out its latency with this_fiber::sleep_for(ctx, latency) on the request
// context, which the server cancels when the client goes away: so a straggler the aggregator
// gave up on stops at once and is counted in `cancelled`.
// Thread-safety: counters are atomics; start/stop from one fiber.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <spindle/clock.hpp>
#include <spindle/waitgroup.hpp>

#include "aggregator.hpp"

namespace spindle::http {
class Server;
}

namespace search_aggregator {

enum class DemoMode { ok, fail, garbage };

struct DemoSpec {
  std::string name;
  Duration latency{};
  DemoMode mode = DemoMode::ok;
};

// "alpha:20ms,bravo:1s,charlie:fail,delta:garbage,echo:50ms:fail" - name, then a latency and/or
// a mode ("fail": HTTP 500, "garbage": a body that is not JSON), in any order.
[[nodiscard]] bool parse_demo_specs(std::string_view s, std::vector<DemoSpec>& out, std::string& error);

// The results a demo backend returns for `query`: 5 hits from a pool of 8 documents, chosen and
// ordered by a hash of (backend, query), so backends overlap and disagree on ranks.
[[nodiscard]] std::string demo_results_json(std::string_view backend, std::string_view query);

class DemoBackends {
 public:
  DemoBackends();
  ~DemoBackends();
  DemoBackends(const DemoBackends&) = delete;
  DemoBackends& operator=(const DemoBackends&) = delete;

  // Listens and serves one backend per spec. Must run in a fiber.
  [[nodiscard]] std::error_code start(const std::vector<DemoSpec>& specs);
  // http://127.0.0.1:PORT/search for each, in spec order.
  [[nodiscard]] std::vector<Backend> backends() const;
  // Graceful shutdown of every server (waits for in-flight handlers). Idempotent.
  void stop();

  [[nodiscard]] std::int64_t requests() const noexcept { return requests_.load(); }
  [[nodiscard]] std::int64_t completed() const noexcept { return completed_.load(); }
  [[nodiscard]] std::int64_t cancelled() const noexcept { return cancelled_.load(); }

 private:
  struct Running;
  std::vector<std::unique_ptr<Running>> servers_;
  spindle::WaitGroup serving_;
  std::atomic<std::int64_t> requests_{0}, completed_{0}, cancelled_{0};
  bool stopped_ = false;
};

}  // namespace search_aggregator
