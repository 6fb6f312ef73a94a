// http_client's integration tests: the Fetcher against loopback servers in the test: one that
// fails the first k attempts, one that answers 4xx, one that accepts and never answers, and a
// closed port. Backoff is observed on a ManualClock (the sleeps happen only when the test
// advances it) and in the attempt log; timeouts are context deadlines; cancellation comes from
// the context and from a real SIGINT (the same signal::notify path the program uses).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/errors.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/waitgroup.hpp>

#include "cli.hpp"
#include "fetcher.hpp"
#include "support/fiber_test.hpp"

namespace http_client {
namespace {

using namespace std::chrono_literals;
using spindle::background;
using spindle::Context;
namespace http = spindle::http;

class LogSink {
 public:
  std::function<void(std::string_view)> fn() {
    return [this](std::string_view line) {
      std::lock_guard lock(mu_);
      lines_.emplace_back(line);
    };
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  int count(std::string_view needle) const {
    int n = 0;
    for (const auto& l : lines()) n += l.find(needle) != std::string::npos ? 1 : 0;
    return n;
  }
  std::string dump() const {
    std::string out;
    for (const auto& l : lines()) out += l + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;  // never held across a park
  std::vector<std::string> lines_;
};

// A loopback HTTP server whose handler is told which hit (1, 2, ...) it is serving; records
// the X-Request-ID of every request it receives.
class Backend {
 public:
  using Fn = std::function<http::Response(int hit, const http::Request&, const Context&)>;

  explicit Backend(Fn fn)
      : fn_(std::move(fn)),
        server_([this](const http::Request& req, const Context& ctx) { return handle(req, ctx); }, quiet()) {
    auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
    EXPECT_FALSE(err) << err.message();
    port_ = ln.port();
    wg_.go([this, ln] { (void)server_.serve(ln); });
  }
  ~Backend() {
    auto [ctx, cancel] = spindle::with_timeout(background(), 5s);
    (void)server_.shutdown(ctx);
    wg_.wait();
  }

  std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  int hits() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(ids_.size());
  }
  std::vector<std::string> ids() const {
    std::lock_guard lock(mu_);
    return ids_;
  }

 private:
  static http::ServerOptions quiet() {
    http::ServerOptions o;
    o.log = [](std::string_view) {};
    return o;
  }
  http::Response handle(const http::Request& req, const Context& ctx) {
    int hit = 0;
    {
      std::lock_guard lock(mu_);
      ids_.emplace_back(req.headers.get("X-Request-ID"));
      hit = static_cast<int>(ids_.size());
    }
    return fn_(hit, req, ctx);
  }

  Fn fn_;
  http::Server server_;
  std::uint16_t port_ = 0;
  spindle::WaitGroup wg_;
  mutable std::mutex mu_;
  std::vector<std::string> ids_;
};

// Accepts connections and never answers; counts them.
class Silent {
 public:
  Silent() {
    auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
    EXPECT_FALSE(err) << err.message();
    ln_ = ln;
    wg_.go([this] {
      for (;;) {
        auto [c, e] = ln_.accept();
        if (e) return;
        {
          std::lock_guard lock(mu_);
          conns_.push_back(c);
        }
        (void)accepted_.try_send(1);
      }
    });
  }
  ~Silent() {
    (void)ln_.close();
    wg_.wait();
    for (auto& c : conns_) (void)c.close();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(ln_.port()) + "/"; }
  int accepted() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(conns_.size());
  }
  // Waits (bounded) for the next accepted connection.
  bool wait_accept() { return accepted_.recv_for(10s).ok(); }

 private:
  spindle::net::Listener ln_;
  spindle::WaitGroup wg_;
  mutable std::mutex mu_;
  std::vector<spindle::net::Conn> conns_;
  spindle::Chan<int> accepted_{64};
};

Config base_config(LogSink& logs) {
  Config cfg;
  cfg.timeout = 30s;
  cfg.attempt_timeout = 10s;
  cfg.retries = 3;
  cfg.backoff = 100ms;
  cfg.backoff_max = 1s;
  cfg.random = [] { return 0.0; };  // no sleeping unless a test says otherwise
  cfg.log = logs.fn();
  return cfg;
}

// Waits until `n` timers are armed on the clock (the fetch is sleeping), failing instead of
// hanging when the fetch ends without sleeping or nothing is armed within 10 s.
::testing::AssertionResult armed(const spindle::patterns::ManualClock& clock, std::size_t n, spindle::WaitGroup& fetch) {
  const auto until = spindle::Clock::now() + 10s;
  while (clock.pending() < n) {
    if (fetch.wait_for(1ms)) return ::testing::AssertionFailure() << "the fetch ended without sleeping on the clock";
    if (spindle::Clock::now() >= until) return ::testing::AssertionFailure() << "no timer armed within 10 s";
  }
  return ::testing::AssertionSuccess();
}

// Every log line of a fetch carries its request ID.
void expect_every_line_tagged(const LogSink& logs, const std::string& id) {
  const std::string tag = "[" + id + "] ";
  for (const auto& l : logs.lines()) {
    if (l.find("received SIG") != std::string::npos) continue;  // about the process, not a request
    EXPECT_EQ(l.rfind(tag, 0), 0u) << "untagged line: " << l;
  }
}

FIBER_TEST(HttpClient, RetriesTransientFailuresWithBackoffOnTheClock) {
  Backend backend([](int hit, const http::Request&, const Context&) {
    return hit <= 2 ? http::Response::text(503, "busy\n") : http::Response::text(200, "ok\n");
  });
  LogSink logs;
  spindle::patterns::ManualClock clock;
  Config cfg = base_config(logs);
  cfg.clock = &clock;
  cfg.random = [] { return 0.5; };  // full jitter at half: delays 50 ms, then 100 ms
  Fetcher f(cfg);

  FetchResult res;
  spindle::WaitGroup wg;
  wg.go([&] { res = f.fetch(background(), backend.url("/flaky")); });

  ASSERT_TRUE(armed(clock, 1, wg)) << logs.dump();  // attempt 1 failed; the first backoff sleep is armed
  EXPECT_EQ(backend.hits(), 1);
  clock.advance(49ms);
  EXPECT_EQ(clock.pending(), 1u);  // still sleeping: no attempt before 50 ms
  clock.advance(1ms);
  ASSERT_TRUE(armed(clock, 1, wg)) << logs.dump();  // attempt 2 failed; the second sleep is armed
  EXPECT_EQ(backend.hits(), 2);
  clock.advance(99ms);
  EXPECT_EQ(clock.pending(), 1u);
  clock.advance(1ms);
  wg.wait();

  ASSERT_FALSE(res.err) << res.err.message() << "\n" << logs.dump();
  EXPECT_EQ(res.status, 200);
  EXPECT_EQ(res.body, "ok\n");
  EXPECT_EQ(res.attempts, 3);
  EXPECT_EQ(backend.hits(), 3);  // exactly: nothing retried twice, nothing lost
  EXPECT_EQ(res.elapsed, 150ms);  // the two sleeps, on the clock

  const std::string tag = "[" + res.request_id + "] ";
  const std::vector<std::string> expected = {
      tag + "attempt 1/4: GET " + backend.url("/flaky"),
      tag + "attempt 1/4 failed: 503 Service Unavailable; retrying in 50 ms",
      tag + "attempt 2/4: GET " + backend.url("/flaky"),
      tag + "attempt 2/4 failed: 503 Service Unavailable; retrying in 100 ms",
      tag + "attempt 3/4: GET " + backend.url("/flaky"),
      tag + "200 OK in 150 ms after 3 attempt(s), 3 bytes",
  };
  EXPECT_EQ(logs.lines(), expected) << logs.dump();
  // The server saw the same request ID on every attempt.
  EXPECT_EQ(backend.ids(), std::vector<std::string>(3, res.request_id));
}

FIBER_TEST(HttpClient, GivesUpAfterTheRetriesWithTheLast5xx) {
  Backend backend([](int, const http::Request&, const Context&) { return http::Response::text(500, "broken\n"); });
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.retries = 2;
  Fetcher f(cfg);
  const FetchResult res = f.fetch(background(), backend.url());
  EXPECT_EQ(res.err, errc::server_error);
  EXPECT_EQ(res.status, 500);
  EXPECT_EQ(res.body, "broken\n");
  EXPECT_EQ(res.attempts, 3);
  EXPECT_EQ(backend.hits(), 3);
  EXPECT_FALSE(res.ok());
  EXPECT_EQ(logs.count("giving up after 3 attempt(s)"), 1) << logs.dump();
  expect_every_line_tagged(logs, res.request_id);
}

FIBER_TEST(HttpClient, ClientErrorsAreNotRetried) {
  Backend backend([](int, const http::Request&, const Context&) { return http::Response::text(404, "no\n"); });
  LogSink logs;
  Fetcher f(base_config(logs));
  const FetchResult res = f.fetch(background(), backend.url("/missing"));
  EXPECT_FALSE(res.err) << res.err.message();
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.attempts, 1);
  EXPECT_EQ(backend.hits(), 1);
  EXPECT_FALSE(res.ok());
  EXPECT_EQ(logs.count("] 404 Not Found in "), 1) << logs.dump();  // (the time is wall-clock)
  EXPECT_EQ(logs.count("after 1 attempt(s), 3 bytes (a client error: not retried)"), 1)
      << logs.dump();
  EXPECT_EQ(logs.count("retrying"), 0) << logs.dump();
}

FIBER_TEST(HttpClient, ConnectionErrorsAreRetried) {
  std::uint16_t port = 0;
  {
    auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
    ASSERT_FALSE(err);
    port = ln.port();
    (void)ln.close();  // nothing listens there now: connections are refused
  }
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.retries = 2;
  Fetcher f(cfg);
  const FetchResult res = f.fetch(background(), "http://127.0.0.1:" + std::to_string(port) + "/");
  EXPECT_EQ(res.err, std::errc::connection_refused) << res.err.message();
  EXPECT_EQ(res.attempts, 3);
  EXPECT_EQ(res.status, 0);
  EXPECT_EQ(logs.count("failed: Connection refused; retrying"), 2) << logs.dump();
}

FIBER_TEST(HttpClient, AttemptTimeoutCutsASilentServerAndIsRetried) {
  Silent silent;
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.attempt_timeout = 50ms;
  cfg.retries = 1;
  Fetcher f(cfg);
  const FetchResult res = f.fetch(background(), silent.url());
  EXPECT_EQ(res.err, errc::attempt_timeout) << res.err.message();
  EXPECT_EQ(res.attempts, 2);
  EXPECT_EQ(silent.accepted(), 2);  // each attempt on a connection of its own
  EXPECT_EQ(logs.count("attempt 1/2 failed: attempt timed out; retrying in 0 ms"), 1) << logs.dump();
}

FIBER_TEST(HttpClient, OverallTimeoutEndsTheFetch) {
  Silent silent;
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.timeout = 50ms;
  cfg.attempt_timeout = 0s;
  cfg.retries = 5;
  Fetcher f(cfg);
  const FetchResult res = f.fetch(background(), silent.url());
  EXPECT_EQ(res.err, spindle::errc::deadline_exceeded) << res.err.message();
  EXPECT_EQ(res.attempts, 1);
  EXPECT_EQ(logs.count("stopped after 1 attempt(s)"), 1) << logs.dump();
  EXPECT_EQ(logs.count("timeout exceeded"), 1) << logs.dump();
}

FIBER_TEST(HttpClient, CancellingTheContextStopsTheAttemptInFlight) {
  Silent silent;
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.timeout = 0s;
  cfg.attempt_timeout = 0s;  // only the cancel can end it
  Fetcher f(cfg);
  auto [ctx, cancel] = spindle::with_cancel(background());
  FetchResult res;
  spindle::WaitGroup wg;
  wg.go([&, c = ctx] { res = f.fetch(c, silent.url()); });
  ASSERT_TRUE(silent.wait_accept());  // the request is in flight
  cancel();
  wg.wait();
  EXPECT_EQ(res.err, spindle::errc::canceled) << res.err.message();
  EXPECT_EQ(res.attempts, 1);
  EXPECT_EQ(logs.count("stopped after 1 attempt(s)"), 1) << logs.dump();
  EXPECT_EQ(logs.count(": cancelled"), 1) << logs.dump();
  expect_every_line_tagged(logs, res.request_id);
}

FIBER_TEST(HttpClient, SigintCancelsEveryFetch) {
  Silent silent;
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.timeout = 0s;
  cfg.attempt_timeout = 0s;
  Fetcher f(cfg);
  std::vector<FetchResult> results;
  bool interrupted = false;
  spindle::WaitGroup wg;
  wg.go([&] { results = fetch_until_signal(f, background(), {silent.url(), silent.url()}, interrupted); });
  ASSERT_TRUE(silent.wait_accept());
  ASSERT_TRUE(silent.wait_accept());  // both in flight, so the signal subscription is in place
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  ASSERT_TRUE(wg.wait_for(10s)) << "SIGINT did not stop the fetches";

  EXPECT_TRUE(interrupted);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.err, spindle::errc::canceled) << r.err.message();
    EXPECT_EQ(r.attempts, 1);
  }
  EXPECT_EQ(logs.count("received SIGINT: cancelling every request"), 1) << logs.dump();
  EXPECT_EQ(logs.count("cancelled"), 2) << logs.dump();
}

FIBER_TEST(HttpClient, FetchAllRunsConcurrentlyWithOneRequestIdEach) {
  // Each handler waits until all three requests have arrived: sequential fetching would leave
  // the first one waiting until its bound and answer 500.
  std::atomic<int> arrived{0};
  spindle::Chan<int> all_here(0);
  Backend backend([&](int, const http::Request& req, const Context&) {
    if (arrived.fetch_add(1) + 1 == 3) all_here.close();
    if (all_here.recv_for(10s).status != spindle::ChanStatus::closed) return http::Response::text(500, "alone\n");
    return http::Response::text(200, std::string(req.headers.get("X-Request-ID")));
  });
  LogSink logs;
  Config cfg = base_config(logs);
  cfg.retries = 0;
  Fetcher f(cfg);
  const std::vector<std::string> urls = {backend.url("/a"), backend.url("/b"), backend.url("/c")};
  const std::vector<FetchResult> results = f.fetch_all(background(), urls);

  ASSERT_EQ(results.size(), 3u);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < results.size(); ++i) {
    const FetchResult& r = results[i];
    EXPECT_EQ(r.url, urls[i]);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.body, r.request_id);  // the server received this fetch's own ID
    ids.insert(r.request_id);
    EXPECT_EQ(logs.count("[" + r.request_id + "] 200 OK"), 1) << logs.dump();
  }
  EXPECT_EQ(ids.size(), 3u);
  const std::vector<std::string> seen = backend.ids();
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()), ids);
  // IDs follow the order of the URLs: <run>-0001, -0002, -0003.
  EXPECT_TRUE(results[0].request_id.ends_with("-0001")) << results[0].request_id;
  EXPECT_TRUE(results[2].request_id.ends_with("-0003")) << results[2].request_id;
}

TEST(HttpClientRetryable, TransientFailuresOnly) {
  EXPECT_TRUE(retryable(errc::server_error));
  EXPECT_TRUE(retryable(errc::attempt_timeout));
  EXPECT_TRUE(retryable(std::make_error_code(std::errc::connection_refused)));
  EXPECT_TRUE(retryable(std::make_error_code(std::errc::connection_reset)));
  EXPECT_TRUE(retryable(spindle::net::errc::eof));
  EXPECT_FALSE(retryable(spindle::errc::canceled));
  EXPECT_FALSE(retryable(spindle::errc::deadline_exceeded));
  EXPECT_FALSE(retryable(http::errc::bad_url));
  EXPECT_FALSE(retryable(http::errc::bad_response));
}

TEST(HttpClientCli, ParsesFlagsAndUrls) {
  const char* argv[] = {"http_client", "--retries", "5", "--timeout=2s", "--attempt-timeout", "300ms",
                        "--backoff", "50ms", "--body", "http://a/", "http://b:8080/x"};
  Args a = parse_args(11, argv);
  ASSERT_EQ(a.error, "");
  EXPECT_EQ(a.config.retries, 5);
  EXPECT_EQ(a.config.timeout, 2s);
  EXPECT_EQ(a.config.attempt_timeout, 300ms);
  EXPECT_EQ(a.config.backoff, 50ms);
  EXPECT_TRUE(a.print_body);
  EXPECT_EQ(a.urls, (std::vector<std::string>{"http://a/", "http://b:8080/x"}));

  const char* none[] = {"http_client"};
  EXPECT_NE(parse_args(1, none).error, "");
  const char* https[] = {"http_client", "https://example.com/"};
  EXPECT_NE(parse_args(2, https).error, "");
  const char* bad[] = {"http_client", "--retries", "-1", "http://a/"};
  EXPECT_NE(parse_args(4, bad).error, "");
}

}  // namespace
}  // namespace http_client
