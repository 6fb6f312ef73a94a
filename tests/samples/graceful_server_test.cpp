// graceful_server's integration tests: the App on a loopback port, requests in flight, a real
// SIGTERM (raised with kill(2), through the same signal::notify path the program uses), and a
// ManualClock driving the /slow handler's work and the shutdown timeout, so the drain is exact.
#include <signal.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "cli.hpp"
#include "common/duration.hpp"
#include "graceful_server.hpp"
#include "support/fiber_test.hpp"

namespace graceful_server {
namespace {

using namespace std::chrono_literals;
using spindle::background;
namespace http = spindle::http;

// Collects the App's log lines and lets the test wait for one.
class LogSink {
 public:
  std::function<void(std::string_view)> fn() {
    return [this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
      (void)seen_.try_send(0);
    };
  }

  // Waits (bounded) until a line containing `needle` has been logged; returns its index, or -1.
  int wait_for(std::string_view needle, std::chrono::seconds limit = 10s) {
    const auto until = spindle::Clock::now() + limit;
    for (;;) {
      if (int i = index_of(needle); i >= 0) return i;
      const auto left = until - spindle::Clock::now();
      if (left <= spindle::Duration::zero()) return -1;
      (void)seen_.recv_for(left);  // each logged line leaves a token
    }
  }

  int index_of(std::string_view needle) const {
    std::lock_guard lock(mu_);
    for (std::size_t i = 0; i < lines_.size(); ++i) {
      if (lines_[i].find(needle) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  }
  int count(std::string_view needle) const {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const auto& l : lines_) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  std::string dump() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& l : lines_) out += l + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;  // never held across a park
  std::vector<std::string> lines_;
  spindle::Chan<int> seen_{1};
};

// Waits until `n` timers are armed on the clock; fails instead of hanging after 10 s.
::testing::AssertionResult armed(const spindle::patterns::ManualClock& clock, std::size_t n) {
  const auto until = spindle::Clock::now() + 10s;
  while (clock.pending() < n) {
    if (spindle::Clock::now() >= until) {
      return ::testing::AssertionFailure() << clock.pending() << " timer(s) armed after 10 s, expected " << n;
    }
    spindle::this_fiber::sleep_for(1ms);  // polls a condition, with a bound
  }
  return ::testing::AssertionSuccess();
}

Config test_config(spindle::patterns::ManualClock& clock, LogSink& sink, Duration shutdown_timeout) {
  Config cfg;
  cfg.host = "127.0.0.1";
  cfg.port = 0;
  cfg.shutdown_timeout = shutdown_timeout;
  cfg.clock = &clock;
  cfg.log = sink.fn();
  return cfg;
}

std::string url(std::uint16_t port, std::string_view path) {
  return "http://127.0.0.1:" + std::to_string(port) + std::string(path);
}

http::ClientOptions no_retries() {
  http::ClientOptions o;
  o.max_retries = 0;
  return o;
}

FIBER_TEST(GracefulServer, SigtermDrainsEveryInFlightRequest) {
  spindle::patterns::ManualClock clock;
  LogSink logs;
  App app(test_config(clock, logs, 5s));
  ASSERT_FALSE(app.listen());
  const std::uint16_t port = app.port();
  ASSERT_NE(port, 0);

  spindle::WaitGroup wg;
  Summary sum;
  wg.go([&] { sum = app.run(); });
  ASSERT_GE(logs.wait_for("listening on"), 0);

  http::Client client(no_retries());
  std::array<spindle::net::Result<http::Response>, 3> got;
  for (std::size_t i = 0; i < got.size(); ++i) {
    wg.go([&, i] { got[i] = client.get(background(), url(port, "/slow?ms=100")); });
  }
  ASSERT_TRUE(armed(clock, 3)) << logs.dump();  // every handler is working (asleep on the clock)

  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  ASSERT_GE(logs.wait_for("stopped accepting"), 0) << logs.dump();
  // The listener is closed: a new connection is refused while the three are still running.
  auto [conn, dial_err] = spindle::net::dial(background(), "127.0.0.1", port);
  EXPECT_EQ(dial_err, std::errc::connection_refused) << dial_err.message();

  clock.advance(100ms);  // the work is done
  wg.wait();

  for (const auto& r : got) {
    ASSERT_FALSE(r.err) << r.err.message();
    EXPECT_EQ(r.value.status, 200);
    EXPECT_EQ(r.value.body, "worked 100 ms\n");
  }
  EXPECT_EQ(sum.signal, SIGTERM);
  EXPECT_EQ(sum.in_flight, 3);
  EXPECT_EQ(sum.finished, 3);
  EXPECT_EQ(sum.cut_off, 0);
  EXPECT_FALSE(sum.timed_out);
  EXPECT_FALSE(sum.serve_error);

  // The log, in order: signal, stopped accepting, each request finishing, complete.
  const int signal_line = logs.index_of("received SIGTERM: shutting down gracefully (timeout 5s); 3 request(s) in flight");
  const int stopped = logs.index_of("http: shutdown: stopped accepting; closed 0 idle connection(s); waiting for 3");
  const int left2 = logs.index_of("finished: 200 in 100 ms; 2 still in flight");
  const int left1 = logs.index_of("finished: 200 in 100 ms; 1 still in flight");
  const int left0 = logs.index_of("finished: 200 in 100 ms; 0 still in flight");
  const int done = logs.index_of("shutdown complete: 3 request(s) finished during shutdown, 0 cut off");
  EXPECT_GE(signal_line, 0) << logs.dump();
  EXPECT_LT(signal_line, stopped) << logs.dump();
  EXPECT_LT(stopped, left2) << logs.dump();
  EXPECT_LT(left2, left1) << logs.dump();
  EXPECT_LT(left1, left0) << logs.dump();
  EXPECT_LT(left0, done) << logs.dump();
  EXPECT_EQ(logs.count("finished: 200"), 3) << logs.dump();
  EXPECT_EQ(logs.count("cut off after"), 0) << logs.dump();
}

FIBER_TEST(GracefulServer, ShutdownTimeoutCutsOffTheLongRequest) {
  spindle::patterns::ManualClock clock;
  LogSink logs;
  App app(test_config(clock, logs, 1s));
  ASSERT_FALSE(app.listen());
  const std::uint16_t port = app.port();

  spindle::WaitGroup wg;
  Summary sum;
  wg.go([&] { sum = app.run(); });
  ASSERT_GE(logs.wait_for("listening on"), 0);

  http::Client client(no_retries());
  spindle::net::Result<http::Response> quick, slow;
  spindle::WaitGroup quick_wg;
  quick_wg.go([&] { quick = client.get(background(), url(port, "/slow?ms=100")); });
  wg.go([&] { slow = client.get(background(), url(port, "/slow?ms=10000")); });
  ASSERT_TRUE(armed(clock, 2)) << logs.dump();

  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  ASSERT_GE(logs.wait_for("stopped accepting"), 0) << logs.dump();
  clock.advance(100ms);  // the quick one finishes within the timeout...
  quick_wg.wait();       // (its handler has returned, and its response has been written)
  ASSERT_GE(logs.index_of("GET /slow?ms=100 finished: 200 in 100 ms; 1 still in flight"), 0) << logs.dump();
  clock.advance(900ms);  // ...the slow one is still working when the 1 s timeout passes
  wg.wait();

  ASSERT_FALSE(quick.err) << quick.err.message();
  EXPECT_EQ(quick.value.status, 200);
  EXPECT_TRUE(slow.err) << "the cut-off request got a response: " << slow.value.status;
  EXPECT_EQ(sum.in_flight, 2);
  EXPECT_EQ(sum.finished, 1);
  EXPECT_EQ(sum.cut_off, 1);
  EXPECT_TRUE(sum.timed_out);

  const int finished = logs.index_of("GET /slow?ms=100 finished: 200");
  const int timed_out = logs.index_of("shutdown timed out after 1s: closed the remaining connections; 1 request(s) cut off");
  const int cut = logs.index_of("GET /slow?ms=10000 cut off after 1000 ms");
  const int done = logs.index_of("shutdown ended by timeout: 1 request(s) finished during shutdown, 1 cut off");
  EXPECT_GE(finished, 0) << logs.dump();
  EXPECT_LT(finished, timed_out) << logs.dump();
  EXPECT_LT(timed_out, cut) << logs.dump();
  EXPECT_LT(cut, done) << logs.dump();
  EXPECT_EQ(logs.count("cut off after"), 1) << logs.dump();
}

FIBER_TEST(GracefulServer, HealthzAnswers503DuringTheDrainDelay) {
  spindle::patterns::ManualClock clock;
  LogSink logs;
  Config cfg = test_config(clock, logs, 5s);
  cfg.drain_delay = 2s;
  App app(cfg);
  ASSERT_FALSE(app.listen());
  const std::uint16_t port = app.port();

  spindle::WaitGroup wg;
  Summary sum;
  wg.go([&] { sum = app.run(); });
  ASSERT_GE(logs.wait_for("listening on"), 0);

  http::Client client(no_retries());
  auto before = client.get(background(), url(port, "/healthz"));
  ASSERT_FALSE(before.err) << before.err.message();
  EXPECT_EQ(before.value.status, 200);

  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  ASSERT_GE(logs.wait_for("draining: /healthz answers 503; still accepting for 2s"), 0) << logs.dump();
  client.close_idle_connections();  // a new connection: still accepted during the delay
  auto during = client.get(background(), url(port, "/healthz"));
  ASSERT_FALSE(during.err) << during.err.message();
  EXPECT_EQ(during.value.status, 503);
  EXPECT_EQ(logs.index_of("stopped accepting"), -1);

  ASSERT_TRUE(armed(clock, 1)) << logs.dump();  // the drain delay's timer
  clock.advance(2s);
  wg.wait();
  auto [conn, dial_err] = spindle::net::dial(background(), "127.0.0.1", port);
  EXPECT_EQ(dial_err, std::errc::connection_refused) << dial_err.message();
  EXPECT_EQ(sum.in_flight, 0);
  EXPECT_FALSE(sum.timed_out);
  EXPECT_GE(logs.index_of("shutdown complete: 0 request(s) finished during shutdown, 0 cut off"), 0) << logs.dump();
}

FIBER_TEST(GracefulServer, SecondSignalForcesTheShutdown) {
  spindle::patterns::ManualClock clock;
  LogSink logs;
  App app(test_config(clock, logs, 60s));
  ASSERT_FALSE(app.listen());
  const std::uint16_t port = app.port();

  spindle::WaitGroup wg;
  Summary sum;
  wg.go([&] { sum = app.run(); });
  ASSERT_GE(logs.wait_for("listening on"), 0);

  http::Client client(no_retries());
  spindle::net::Result<http::Response> slow;
  wg.go([&] { slow = client.get(background(), url(port, "/slow?ms=10000")); });
  ASSERT_TRUE(armed(clock, 1)) << logs.dump();
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  ASSERT_GE(logs.wait_for("stopped accepting"), 0) << logs.dump();
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  wg.wait();  // no clock advance: only the second signal can end the drain

  EXPECT_TRUE(slow.err);
  EXPECT_EQ(sum.signal, SIGTERM);
  EXPECT_EQ(sum.cut_off, 1);
  EXPECT_TRUE(sum.timed_out);
  const int again = logs.index_of("received SIGINT again: forcing shutdown");
  const int forced = logs.index_of("shutdown forced after 0s: closed the remaining connections; 1 request(s) cut off");
  EXPECT_GE(again, 0) << logs.dump();
  EXPECT_LT(again, forced) << logs.dump();
}

FIBER_TEST(GracefulServer, RoutesAnswer) {
  spindle::patterns::ManualClock clock;
  LogSink logs;
  App app(test_config(clock, logs, 1s));
  ASSERT_FALSE(app.listen());
  const std::uint16_t port = app.port();
  auto [ctx, cancel] = spindle::with_cancel(background());
  spindle::WaitGroup wg;
  Summary sum;
  wg.go([&, c = ctx] { sum = app.run(c); });
  ASSERT_GE(logs.wait_for("listening on"), 0);

  http::Client client(no_retries());
  auto hello = client.get(background(), url(port, "/"));
  auto zero = client.get(background(), url(port, "/slow?ms=0"));
  auto bad = client.get(background(), url(port, "/slow?ms=-3"));
  auto missing = client.get(background(), url(port, "/nope"));
  EXPECT_EQ(hello.value.status, 200);
  EXPECT_EQ(hello.value.body, "hello from graceful_server\n");
  EXPECT_EQ(zero.value.status, 200);
  EXPECT_EQ(bad.value.status, 400);
  EXPECT_EQ(missing.value.status, 404);
  cancel();  // run()'s context stands in for a signal
  wg.wait();
  EXPECT_EQ(sum.signal, 0);
  EXPECT_GE(logs.index_of("context done: shutting down gracefully"), 0) << logs.dump();
  EXPECT_FALSE(sum.timed_out);  // still a graceful shutdown, not a forced one
  EXPECT_GE(logs.index_of("shutdown complete: 0 request(s) finished during shutdown, 0 cut off"), 0) << logs.dump();
}

TEST(GracefulServerCli, ParsesFlags) {
  const char* argv[] = {"graceful_server", "--listen", ":9090", "--shutdown-timeout=1.5s", "--drain-delay", "250ms"};
  Args a = parse_args(6, argv);
  ASSERT_EQ(a.error, "");
  EXPECT_EQ(a.config.host, "0.0.0.0");
  EXPECT_EQ(a.config.port, 9090);
  EXPECT_EQ(a.config.shutdown_timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(a.config.drain_delay, std::chrono::milliseconds(250));

  const char* bad_duration[] = {"graceful_server", "--shutdown-timeout", "soon"};
  EXPECT_NE(parse_args(3, bad_duration).error, "");
  const char* bad_port[] = {"graceful_server", "--listen", "127.0.0.1:99999"};
  EXPECT_NE(parse_args(3, bad_port).error, "");
  const char* unknown[] = {"graceful_server", "--verbose"};
  EXPECT_NE(parse_args(2, unknown).error, "");
  // The log lines' durations (common/duration.hpp).
  EXPECT_EQ(samples::format_duration(std::chrono::milliseconds(1500)), "1.5s");
  EXPECT_EQ(samples::format_duration(std::chrono::seconds(10)), "10s");
  EXPECT_EQ(samples::format_duration(std::chrono::milliseconds(250)), "250ms");
}

}  // namespace
}  // namespace graceful_server
