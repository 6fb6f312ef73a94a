// The gateway sample end to end on loopback: the real Gateway core (server, limiter, breakers,
// cache, metrics, log, demo backends) on port 0, driven with spindle::http::Client, with a
// ManualClock for everything time-based so that every count is exact and nothing sleeps.
//
// What is checked: burst N allowed and the N+1th refused (429), refill after exactly 1/rate, one
// bucket per API key and one per peer address; a failing backend degrades (cached last-good
// answer, else a fallback), opens its breaker (the backend is then not called at all), and
// recovers after the cool-down once healed; /metrics agrees exactly with the requests sent;
// idle clients are forgotten exactly at idle_ttl; shutdown waits for an in-flight slow request
// and the client gets its answer; the event log has one JSON line per event. FIBER_TEST adds a
// leak check (no fiber left) at 1, 2 and 4 workers; the shutdown test also counts descriptors.
#include <dirent.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "config.hpp"
#include "gateway.hpp"
#include "metrics.hpp"
#include "support/fds.hpp"
#include "support/fiber_test.hpp"

namespace {

using namespace std::chrono_literals;
namespace http = spindle::http;
namespace patterns = spindle::patterns;

// The log's lines, collected from the writer fiber.
class Lines {
 public:
  void add(std::string_view batch) {
    std::lock_guard lock(mu_);
    while (!batch.empty()) {
      const auto nl = batch.find('\n');
      lines_.emplace_back(batch.substr(0, nl));
      batch.remove_prefix(nl == std::string_view::npos ? batch.size() : nl + 1);
    }
  }
  // Every line parsed (a line that is not JSON fails the test).
  std::vector<nlohmann::json> events() const {
    std::lock_guard lock(mu_);
    std::vector<nlohmann::json> out;
    for (const auto& l : lines_) {
      auto j = nlohmann::json::parse(l, nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << l;
      out.push_back(std::move(j));
    }
    return out;
  }
  std::vector<nlohmann::json> of(std::string_view event) const {
    std::vector<nlohmann::json> out;
    for (auto& j : events()) {
      if (j.value("event", "") == event) out.push_back(j);
    }
    return out;
  }

 private:
  mutable std::mutex mu_;  // never held across a park
  std::vector<std::string> lines_;
};

gateway::Config test_config() {
  gateway::Config c;
  c.listen_port = 0;
  c.demo = true;
  c.rate = 10;  // a token every 100 ms
  c.burst = 3;
  c.sweep_interval = 0s;  // the tests sweep through /metrics, on their clock
  c.breaker_failures = 3;
  c.breaker_cooldown = 5s;
  c.upstream_timeout = 10s;
  c.demo_slow_delay = 1s;
  return c;
}

using spindle::testing::open_fds;

// A started gateway on a ManualClock, and a client without retries.
struct Harness {
  patterns::ManualClock clock;
  Lines log;
  gateway::Gateway gw;
  http::Client client{http::ClientOptions{.timeout = 20s, .max_retries = 0, .retry_statuses = {}}};
  bool stopped = false;

  explicit Harness(gateway::Config cfg = test_config())
      : gw(std::move(cfg), &clock, gateway::EventLog::Target::to([this](std::string_view b) { log.add(b); })) {
    const std::string err = gw.start();
    EXPECT_EQ(err, "");
    EXPECT_NE(gw.port(), 0);
  }
  ~Harness() { stop(); }

  std::error_code stop() {
    if (stopped) return {};
    stopped = true;
    client.close_idle_connections();
    return gw.shutdown(10s);
  }

  http::Response send(std::string method, const std::string& path, const std::string& key = "") {
    http::Request req;
    req.method = std::move(method);
    if (!key.empty()) req.headers.set("X-API-Key", key);
    auto [resp, err] = client.request(spindle::background(), gw.url(path), std::move(req));
    EXPECT_FALSE(err) << path << ": " << err.message();
    return resp;
  }
  http::Response get(const std::string& path, const std::string& key = "") { return send("GET", path, key); }
  int status(const std::string& path, const std::string& key = "") { return get(path, key).status; }
  std::string metrics() {
    http::Response r = get("/metrics");
    EXPECT_EQ(r.status, 200);
    return r.body;
  }
};

double value(const std::string& body, std::string_view name, std::string_view labels = "") {
  return gateway::scrape_value(body, name, labels);
}

FIBER_TEST(Gateway, BurstIsAllowedThenEachClientIsLimitedExactly) {
  Harness h;
  // Burst 3: three pass, the fourth is refused, per API key.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.status("/api/fast/a", "alice"), 200) << i;
  http::Response limited = h.get("/api/fast/a", "alice");
  EXPECT_EQ(limited.status, 429);
  EXPECT_EQ(limited.headers.get("Retry-After"), "1");  // 100 ms to the next token, in whole seconds
  // Another key has its own bucket.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.status("/api/fast/b", "bob"), 200) << i;
  EXPECT_EQ(h.status("/api/fast/b", "bob"), 429);
  // No key: the bucket of the peer address (127.0.0.1), untouched so far.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.status("/api/fast/c"), 200) << i;
  EXPECT_EQ(h.status("/api/fast/c"), 429);
  EXPECT_TRUE(h.gw.limiter().tracked("key:alice"));
  EXPECT_TRUE(h.gw.limiter().tracked("ip:127.0.0.1"));

  // Refill: one token per 100 ms of (fake) time, exactly.
  h.clock.advance(99ms);
  EXPECT_EQ(h.status("/api/fast/a", "alice"), 429);
  h.clock.advance(1ms);
  EXPECT_EQ(h.status("/api/fast/a", "alice"), 200);
  EXPECT_EQ(h.status("/api/fast/a", "alice"), 429);
  h.clock.advance(250ms);  // 2.5 tokens
  EXPECT_EQ(h.status("/api/fast/a", "alice"), 200);
  EXPECT_EQ(h.status("/api/fast/a", "alice"), 200);
  EXPECT_EQ(h.status("/api/fast/a", "alice"), 429);

  // Operational endpoints are never limited.
  for (int i = 0; i < 5; ++i) EXPECT_EQ(h.status("/healthz"), 200);

  const std::string m = h.metrics();
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/api/fast",status="200")"), 12);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/api/fast",status="429")"), 6);
  EXPECT_EQ(value(m, "gateway_limited_total", R"(route="/api/fast")"), 6);
  EXPECT_EQ(h.gw.demo()->hits("fast"), 12u);  // refused requests never reach the backend
  EXPECT_EQ(h.stop(), std::error_code());
  EXPECT_EQ(h.log.of("limit").size(), 6u);
  for (const auto& e : h.log.of("limit")) EXPECT_EQ(e["route"], "/api/fast");
}

FIBER_TEST(Gateway, FailingBackendOpensItsBreakerDegradesAndRecovers) {
  gateway::Config cfg = test_config();
  cfg.burst = 1000;  // this test is about the breaker, not the limiter
  Harness h(cfg);
  auto* demo = h.gw.demo();

  http::Response good = h.get("/api/fast/item");
  ASSERT_EQ(good.status, 200);
  EXPECT_FALSE(good.headers.has("X-Gateway-Degraded"));
  EXPECT_EQ(h.send("POST", "/admin/backends/fast/fail?on=1").status, 200);

  // Failure 1: the backend answers 500; the last good answer is served, marked.
  h.clock.advance(2s);
  http::Response cached = h.get("/api/fast/item");
  EXPECT_EQ(cached.status, 200);
  EXPECT_EQ(cached.headers.get("X-Gateway-Degraded"), "cached");
  EXPECT_EQ(cached.headers.get("Age"), "2");
  EXPECT_EQ(cached.body, good.body);
  // Failure 2: nothing cached for this target: the fallback.
  http::Response fallback = h.get("/api/fast/other");
  EXPECT_EQ(fallback.status, 503);
  EXPECT_EQ(fallback.headers.get("X-Gateway-Degraded"), "fallback");
  EXPECT_EQ(nlohmann::json::parse(fallback.body)["upstream_status"], 500);
  EXPECT_EQ(h.gw.backend("fast")->breaker_state(), patterns::BreakerState::closed);
  // Failure 3 opens the breaker.
  EXPECT_EQ(h.get("/api/fast/item").headers.get("X-Gateway-Degraded"), "cached");
  EXPECT_EQ(h.gw.backend("fast")->breaker_state(), patterns::BreakerState::open);
  EXPECT_EQ(demo->hits("fast"), 4u);

  // Open: the backend is not called at all, even once healed, until the cool-down has passed.
  EXPECT_EQ(h.get("/api/fast/item").headers.get("X-Gateway-Degraded"), "cached");
  EXPECT_EQ(h.get("/api/fast/other").headers.get("X-Gateway-Degraded"), "fallback");
  EXPECT_EQ(h.send("POST", "/admin/backends/fast/fail?on=0").status, 200);
  h.clock.advance(5s - 1ns);
  EXPECT_EQ(h.get("/api/fast/item").headers.get("X-Gateway-Degraded"), "cached");
  EXPECT_EQ(demo->hits("fast"), 4u);
  EXPECT_EQ(value(h.metrics(), "gateway_breaker_state", R"(backend="fast")"), 2);

  // Past the cool-down: half-open, one probe goes through, succeeds, and closes the breaker.
  h.clock.advance(1ns);
  http::Response fresh = h.get("/api/fast/item");
  EXPECT_EQ(fresh.status, 200);
  EXPECT_FALSE(fresh.headers.has("X-Gateway-Degraded"));
  EXPECT_EQ(nlohmann::json::parse(fresh.body)["hit"], 5);
  EXPECT_EQ(h.gw.backend("fast")->breaker_state(), patterns::BreakerState::closed);
  EXPECT_EQ(demo->hits("fast"), 5u);

  const std::string m = h.metrics();
  EXPECT_EQ(value(m, "gateway_breaker_state", R"(backend="fast")"), 0);
  EXPECT_EQ(value(m, "gateway_breaker_state", R"(backend="slow")"), 0);
  EXPECT_EQ(value(m, "gateway_breaker_transitions_total", R"(backend="fast",to="open")"), 1);
  EXPECT_EQ(value(m, "gateway_breaker_transitions_total", R"(backend="fast",to="half-open")"), 1);
  EXPECT_EQ(value(m, "gateway_breaker_transitions_total", R"(backend="fast",to="closed")"), 1);
  EXPECT_EQ(value(m, "gateway_degraded_total", R"(backend="fast",kind="cached")"), 4);
  EXPECT_EQ(value(m, "gateway_degraded_total", R"(backend="fast",kind="fallback")"), 2);
  EXPECT_EQ(value(m, "gateway_upstream_total", R"(backend="fast",result="ok")"), 2);
  EXPECT_EQ(value(m, "gateway_upstream_total", R"(backend="fast",result="error")"), 3);
  EXPECT_EQ(value(m, "gateway_upstream_total", R"(backend="fast",result="rejected")"), 3);

  EXPECT_EQ(h.stop(), std::error_code());
  std::vector<std::string> transitions;
  for (const auto& e : h.log.of("breaker")) {
    EXPECT_EQ(e["backend"], "fast");
    transitions.push_back(e["from"].get<std::string>() + ">" + e["to"].get<std::string>());
  }
  EXPECT_EQ(transitions, (std::vector<std::string>{"closed>open", "open>half-open", "half-open>closed"}));
  EXPECT_EQ(h.log.of("degraded").size(), 6u);
}

FIBER_TEST(Gateway, MetricsAgreeExactlyWithTheRequestsSent) {
  Harness h;
  int sent = 0;
  auto expect = [&](const std::string& path, int status, const std::string& key = "", const char* method = "GET") {
    EXPECT_EQ(h.send(method, path, key).status, status) << path;
    ++sent;
  };
  for (int k = 0; k < 4; ++k) {
    const std::string key = "k" + std::to_string(k);
    for (int i = 0; i < 5; ++i) expect("/api/fast/x?i=" + std::to_string(i), i < 3 ? 200 : 429, key);
  }
  expect("/api/nope/x", 404, "other");
  expect("/api/flaky/x", 503, "other");  // flaky starts failing: fallback
  expect("/healthz", 200);
  expect("/nowhere", 404);
  expect("/debug/fibers", 200);
  expect("/admin/backends/nope/fail?on=1", 404, "", "POST");
  expect("/metrics", 405, "", "POST");

  const std::string m = h.metrics();  // not counted in itself
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/api/fast",status="200")"), 12);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/api/fast",status="429")"), 8);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/api/?",status="404")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/api/flaky",status="503")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/healthz",status="200")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="other",status="404")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/debug/fibers",status="200")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/admin",status="404")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/metrics",status="405")"), 1);
  EXPECT_EQ(value(m, "gateway_requests_total", R"(route="/metrics",status="200")"), -1);  // absent
  EXPECT_EQ(value(m, "gateway_limited_total", R"(route="/api/fast")"), 8);
  EXPECT_EQ(value(m, "gateway_degraded_total", R"(backend="flaky",kind="fallback")"), 1);
  EXPECT_EQ(value(m, "gateway_in_flight"), 1);  // the scrape itself
  EXPECT_GT(value(m, "gateway_fibers"), 0);
  EXPECT_GT(value(m, "process_open_fds"), 0);
  // Every requests_total sample summed: exactly the requests sent before the scrape.
  double total = 0;
  for (std::size_t pos = 0; (pos = m.find("\ngateway_requests_total{", pos)) != std::string::npos; ++pos) {
    const auto sp = m.find(' ', pos + 1);
    total += std::stod(m.substr(sp + 1, m.find('\n', sp) - sp - 1));
  }
  EXPECT_EQ(total, sent);
  EXPECT_EQ(value(h.metrics(), "gateway_requests_total", R"(route="/metrics",status="200")"), 1);

  EXPECT_EQ(h.stop(), std::error_code());
  // One "request" line per request, the two scrapes included.
  EXPECT_EQ(h.log.of("request").size(), static_cast<std::size_t>(sent + 2));
  EXPECT_EQ(h.log.of("start").size(), 1u);
  EXPECT_EQ(h.log.of("stopped").size(), 1u);
}

FIBER_TEST(Gateway, IdleClientsAreEvictedAtIdleTtl) {
  Harness h;  // idle_ttl defaults to burst / rate = 300 ms: lossless
  EXPECT_EQ(h.gw.limiter().idle_ttl(), 300ms + 1ns);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.status("/api/fast/x", "a"), 200);
  EXPECT_EQ(h.status("/api/fast/x", "b"), 200);
  EXPECT_EQ(h.status("/api/fast/x", "c"), 200);
  EXPECT_EQ(value(h.metrics(), "gateway_clients"), 3);

  h.clock.advance(300ms);
  std::string m = h.metrics();
  EXPECT_EQ(value(m, "gateway_clients"), 3);
  EXPECT_EQ(value(m, "gateway_clients_evicted_total"), 0);
  h.clock.advance(1ns);
  m = h.metrics();
  EXPECT_EQ(value(m, "gateway_clients"), 0);
  EXPECT_EQ(value(m, "gateway_clients_evicted_total"), 3);
  EXPECT_FALSE(h.gw.limiter().tracked("key:a"));

  // Lossless: "a" drained its bucket, then idled long enough to refill it, so coming back as a
  // new client with a full bucket grants nothing extra.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.status("/api/fast/x", "a"), 200);
  EXPECT_EQ(h.status("/api/fast/x", "a"), 429);
  EXPECT_EQ(value(h.metrics(), "gateway_clients"), 1);
  EXPECT_EQ(h.stop(), std::error_code());
  const auto evicts = h.log.of("evict");
  ASSERT_EQ(evicts.size(), 1u);
  EXPECT_EQ(evicts[0]["clients"], 3);
}

FIBER_TEST(Gateway, GracefulShutdownFinishesAnInFlightSlowRequest) {
  { auto [ln, err] = spindle::net::listen("127.0.0.1", 0); }  // the netpoller's descriptors exist
  const int fds = open_fds();
  {
    Harness h;
    EXPECT_EQ(h.status("/api/fast/warm"), 200);
    const std::size_t timers = h.clock.pending();

    spindle::WaitGroup wg;
    std::optional<http::Response> slow;
    wg.go([&] { slow = h.get("/api/slow/report", "s"); });
    h.clock.block_until_pending(timers + 1);  // the slow backend is sleeping on the clock
    EXPECT_EQ(h.gw.metrics().in_flight.load(), 1);

    std::error_code shutdown_result{std::make_error_code(std::errc::interrupted)};
    wg.go([&] { shutdown_result = h.stop(); });
    // Shutdown has begun once the listener is closed: new connections are refused.
    const std::uint16_t port = h.gw.port();
    bool refused = false;
    for (int i = 0; i < 100000 && !refused; ++i) {
      auto [conn, err] = spindle::net::dial("127.0.0.1", port);
      if (err) {
        refused = true;
      } else {
        (void)conn.close();
        spindle::this_fiber::yield();
      }
    }
    EXPECT_TRUE(refused);
    EXPECT_FALSE(slow.has_value());  // still waiting on the backend

    h.clock.advance(1s);  // the slow backend answers
    wg.wait();
    ASSERT_TRUE(slow.has_value());
    EXPECT_EQ(slow->status, 200);
    EXPECT_EQ(nlohmann::json::parse(slow->body)["backend"], "slow");
    EXPECT_EQ(shutdown_result, std::error_code());

    const auto stopped = h.log.of("stopped");
    ASSERT_EQ(stopped.size(), 1u);
    EXPECT_EQ(stopped[0]["graceful"], true);
    bool logged = false;
    for (const auto& r : h.log.of("request")) logged |= r["path"] == "/api/slow/report" && r["status"] == 200;
    EXPECT_TRUE(logged);
  }
  EXPECT_EQ(open_fds(), fds);
}

FIBER_TEST(Gateway, DebugFibersServesTheDump) {
  Harness h;
  http::Response r = h.get("/debug/fibers");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("fiber(s)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("http.conn"), std::string::npos) << r.body;
}

TEST(GatewayConfig, ParsesFlagsAndRejectsBadOnes) {
  auto ok = gateway::parse_args({"--listen", "0.0.0.0:9000", "--rate=2.5", "--burst", "7", "--backend",
                                 "users=http://127.0.0.1:9001/v1/", "--shutdown-timeout", "250ms", "--log", "off"});
  ASSERT_TRUE(ok.config) << ok.error;
  EXPECT_EQ(ok.config->listen_host, "0.0.0.0");
  EXPECT_EQ(ok.config->listen_port, 9000);
  EXPECT_EQ(ok.config->rate, 2.5);
  EXPECT_EQ(ok.config->burst, 7);
  ASSERT_EQ(ok.config->backends.size(), 1u);
  EXPECT_EQ(ok.config->backends[0].url, "http://127.0.0.1:9001/v1");
  EXPECT_EQ(ok.config->shutdown_timeout, 250ms);
  EXPECT_EQ(ok.config->log, "off");
  auto url = gateway::parse_http_url("http://127.0.0.1:9001/v1");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->port, 9001);
  EXPECT_EQ(url->prefix, "/v1");

  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {},                                    // no backend
           {"--demo", "--rate", "0"},             // rate must be positive
           {"--demo", "--burst", "x"},
           {"--demo", "--listen", "nope"},
           {"--backend", "a=ftp://h:1"},
           {"--backend", "a=http://h:1", "--backend", "a=http://h:2"},
           {"--demo", "--backend", "fast=http://h:1"},
           {"--demo", "--shutdown-timeout", "-1s"},
           {"--demo", "--bogus"},
           {"--demo", "--rate"}}) {
    auto r = gateway::parse_args(bad);
    EXPECT_FALSE(r.config) << ::testing::PrintToString(bad);
    EXPECT_FALSE(r.error.empty());
  }
  EXPECT_TRUE(gateway::parse_args(std::vector<std::string>{"--help"}).help);
}

}  // namespace
