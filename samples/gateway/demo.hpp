// DemoBackends: three small HTTP services on loopback so that `gateway --demo` shows everything
// with one command, and the integration test has backends it controls.
//
//   fast   answers at once: {"backend":"fast","path":"/x","hit":7}
//   slow   answers after a delay on the injected clock (default 200 ms; ?delay_ms=N overrides),
//          so a test holds a request in flight exactly as long as it wants (ManualClock)
//   flaky  like fast, but starts *failing* (500), to show degradation right away
// Any of them can be made to fail (500) or heal: set_failing(name, on), which the gateway
// exposes as POST /admin/backends/<name>/fail?on=1|0. "hit" counts the requests that reached
// the backend (failed ones included), so a cached answer is told apart from a fresh one.
//
// Thread-safety: set_failing/hits from any fiber. Lifetime: start() and shutdown() from the
// owner's fiber; shutdown before destruction.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/http/server.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/waitgroup.hpp>

#include "config.hpp"

namespace gateway {

class DemoBackends {
 public:
  DemoBackends(const spindle::patterns::Clock& clock, std::chrono::nanoseconds slow_delay);
  ~DemoBackends();
  DemoBackends(const DemoBackends&) = delete;
  DemoBackends& operator=(const DemoBackends&) = delete;

  // Listens on 127.0.0.1:0 for each backend and serves it in a fiber. Returns "" or an error.
  [[nodiscard]] std::string start();
  // name=http://127.0.0.1:<port> for each backend.
  [[nodiscard]] std::vector<BackendSpec> specs() const;
  // Makes `name` fail (500) or heal. False for an unknown name.
  bool set_failing(std::string_view name, bool on);
  [[nodiscard]] bool failing(std::string_view name) const;
  // Requests that reached `name` so far.
  [[nodiscard]] std::uint64_t hits(std::string_view name) const;
  // Graceful shutdown of every backend server, bounded by ctx; joins the serve fibers.
  std::error_code shutdown(const spindle::Context& ctx);

 private:
  struct Service;
  [[nodiscard]] Service* find(std::string_view name) const;

  const spindle::patterns::Clock& clock_;
  std::chrono::nanoseconds slow_delay_;
  std::vector<std::unique_ptr<Service>> services_;
  spindle::WaitGroup wg_;
  bool started_ = false;
};

}  // namespace gateway
