// graceful_server: an HTTP server that shuts down gracefully on SIGINT/SIGTERM (the seed's
// "Exercise 2: Graceful Server"), on spindle::http::Server and spindle::signal.
//
// Lifecycle of App::run():
//   serving   -> routes answer; every request is tracked (#id, method, target, start time);
//   signal    -> "received SIGTERM ..." with the requests in flight; /healthz answers 503 from
//                here on; new connections are still accepted for `drain_delay` (0 by default)
//                so a load balancer can notice the 503 and stop sending;
//   draining  -> http::Server::shutdown: the listener is closed (new connections are refused),
//                idle keep-alive connections are closed, and each request still running is
//                logged as it finishes ("... 200 in 120 ms; 2 still in flight");
//   done      -> "shutdown complete" once every request finished, or, when `shutdown_timeout`
//                passes first (or a second signal arrives), the remaining connections are
//                closed, their request contexts cancelled, and each such request is reported
//                as cut off. run() returns a summary with the counts.
//
// Time (the /slow handler's work, the drain delay, the shutdown timeout, and the durations in
// the log) is read from a patterns::Clock, so a test drives it with a ManualClock.
//
// Thread-safety: one App is run by one fiber; its handlers run on the server's connection
// fibers and share the request table under a std::mutex that is never held across a park.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <spindle/context.hpp>
#include <spindle/http/server.hpp>
#include <spindle/patterns/clock.hpp>

namespace graceful_server {

using spindle::Duration;

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080;                         // 0: the kernel picks one (see App::port)
  Duration shutdown_timeout = std::chrono::seconds(10);
  Duration drain_delay{};                            // /healthz 503 before we stop accepting
  Duration max_slow = std::chrono::minutes(10);      // the largest /slow?ms= accepted
  const spindle::patterns::Clock* clock = nullptr;   // null: the system clock
  std::function<void(std::string_view)> log;         // one line per call; null: stderr
};

// What run() reports.
struct Summary {
  int signal = 0;             // the signal that started the shutdown; 0: run()'s context
  int in_flight = 0;          // requests running when the shutdown began
  int finished = 0;           // requests that finished after the shutdown began
  int cut_off = 0;            // requests still running at the timeout (connections closed)
  bool timed_out = false;     // the timeout (or a second signal) ended the drain
  std::error_code serve_error;  // a fatal accept error that stopped serving early
};

class App {
 public:
  explicit App(Config cfg);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  // Binds the listening socket (so that port() is known before run()). Returns the error.
  [[nodiscard]] std::error_code listen();
  [[nodiscard]] std::uint16_t port() const noexcept;

  // Serves until SIGINT or SIGTERM arrives (or `ctx` is done, or serving fails), then shuts
  // down as described above. Subscribes to the signals before logging "listening on ...", and
  // unsubscribes before returning. Parks the calling fiber; call listen() first.
  Summary run(const spindle::Context& ctx = spindle::background());

  struct State;

 private:
  std::shared_ptr<State> st_;
};

}  // namespace graceful_server
