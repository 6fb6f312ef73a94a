// The HTTP client: retries with backoff against a server that fails the first N times (by
// status and by dropping the connection), no retry for non-idempotent requests, timeouts and
// cancellation, stale pooled connections, URL errors.
#include <atomic>
#include <chrono>
#include <string>

#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "net/http_support.hpp"
#include "net/net_support.hpp"
#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using testing::baseline_fds;
using testing::open_fds;
using testing::TestServer;

http::ClientOptions fast_retries(int n) {
  http::ClientOptions o;
  o.max_retries = n;
  o.backoff_base = 2ms;
  o.backoff_max = 20ms;
  return o;
}

FIBER_TEST(HttpClient, RetriesAServerThatFailsTheFirstNTimes) {
  constexpr int kFailures = 3;
  std::atomic<int> hits{0};
  TestServer server([&](const http::Request&, const Context&) {
    const int n = ++hits;
    if (n <= kFailures) return http::Response::text(503, "busy");
    return http::Response::text(200, "finally");
  });
  http::Client client(fast_retries(kFailures));
  const auto start = Clock::now();
  auto [resp, err] = client.get(background(), server.url("/flaky"));
  ASSERT_FALSE(err) << err.message();
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "finally");
  EXPECT_EQ(hits.load(), kFailures + 1);
  EXPECT_EQ(client.stats().retries, kFailures);
  // Backoff slept at least half of each step: 1 + 2 + 4 ms.
  EXPECT_GE(Clock::now() - start, 7ms);

  // Out of retries: the last response comes back as it is.
  hits = 0;
  http::Client stingy(fast_retries(1));
  auto [last, lerr] = stingy.get(background(), server.url("/flaky"));
  ASSERT_FALSE(lerr);
  EXPECT_EQ(last.status, 503);
  EXPECT_EQ(hits.load(), 2);
  client.close_idle_connections();
  stingy.close_idle_connections();
}

FIBER_TEST(HttpClient, NonIdempotentRequestsAreNotRetried) {
  std::atomic<int> hits{0};
  TestServer server([&](const http::Request&, const Context&) {
    ++hits;
    return http::Response::text(503, "busy");
  });
  http::Client client(fast_retries(5));
  http::Request post;
  post.method = "POST";
  post.body = "once";
  auto [resp, err] = client.request(background(), server.url("/"), post);
  ASSERT_FALSE(err);
  EXPECT_EQ(resp.status, 503);
  EXPECT_EQ(hits.load(), 1);
  // ... unless it carries an idempotency key.
  hits = 0;
  post.headers.add("Idempotency-Key", "k1");
  auto [again, aerr] = client.request(background(), server.url("/"), post);
  ASSERT_FALSE(aerr);
  EXPECT_EQ(hits.load(), 6);
  client.close_idle_connections();
}

FIBER_TEST(HttpClient, RetriesWhenTheServerDropsTheConnection) {
  // A raw server: the first two connections are closed without an answer, the third answers.
  auto [ln, err] = net::listen("127.0.0.1", 0);
  ASSERT_FALSE(err);
  std::atomic<int> conns{0};
  WaitGroup wg;
  wg.go([&, ln = ln]() mutable {
    for (int i = 0; i < 3; ++i) {
      auto [c, e] = ln.accept();
      if (e) return;
      ++conns;
      char buf[1024];
      (void)c.read(buf);  // the request (small: one read)
      if (i == 2) {
        (void)c.write_all("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
      }
      (void)c.close();
    }
  });
  http::Client client(fast_retries(3));
  auto [resp, rerr] = client.get(background(), "http://127.0.0.1:" + std::to_string(ln.port()) + "/");
  ASSERT_FALSE(rerr) << rerr.message();
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "ok");
  EXPECT_EQ(conns.load(), 3);
  EXPECT_EQ(client.stats().retries, 2);
  wg.wait();
  (void)ln.close();
}

FIBER_TEST(HttpClient, ContextAndTimeoutsEndTheCall) {
  TestServer server([](const http::Request&, const Context& ctx) {
    (void)ctx.done().recv_for(10s);  // the client's cancellation reaches us as "client gone"
    return http::Response::text(200, "slow");
  });
  {
    http::Client client(fast_retries(0));
    const auto start = Clock::now();
    auto [ctx, cancel] = with_timeout(background(), 50ms);
    auto [resp, err] = client.get(ctx, server.url("/"));
    EXPECT_EQ(err, errc::deadline_exceeded);
    EXPECT_GE(Clock::now() - start, 50ms);
  }
  {
    http::ClientOptions o = fast_retries(0);
    o.timeout = 30ms;
    http::Client client(o);
    auto [resp, err] = client.get(background(), server.url("/"));
    EXPECT_EQ(err, errc::deadline_exceeded);
  }
  {
    http::Client client(fast_retries(0));
    auto [ctx, cancel] = with_cancel(background());
    std::error_code got;
    WaitGroup wg;
    wg.go([&, ctx = ctx] { got = client.get(ctx, server.url("/")).err; });
    while (server.server().stats().in_flight == 0) this_fiber::yield();
    cancel();
    wg.wait();
    EXPECT_EQ(got, errc::canceled);
  }
  {  // an attempt timeout is retried; the retries time out too; the error is the attempt's
    http::ClientOptions o = fast_retries(1);
    o.attempt_timeout = 20ms;
    http::Client client(o);
    auto [resp, err] = client.get(background(), server.url("/"));
    EXPECT_EQ(err, errc::deadline_exceeded);
    EXPECT_EQ(client.stats().retries, 1);
  }
}

FIBER_TEST(HttpClient, AStalePooledConnectionIsReplacedTransparently) {
  http::ServerOptions so;
  so.idle_timeout = 20ms;  // the server drops idle keep-alive connections quickly
  std::atomic<int> hits{0};
  TestServer server(
      [&](const http::Request&, const Context&) {
        ++hits;
        return http::Response::text(200, "ok");
      },
      so);
  http::Client client(fast_retries(0));  // no retries: only the stale-connection path may help
  ASSERT_FALSE(client.get(background(), server.url("/1")).err);
  // Wait until the server has closed the pooled connection (bounded).
  for (int i = 0; i < 1000 && server.server().stats().connections_open > 0; ++i) this_fiber::sleep_for(1ms);
  auto [resp, err] = client.get(background(), server.url("/2"));
  ASSERT_FALSE(err) << err.message();
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(hits.load(), 2);
  EXPECT_EQ(client.stats().dials, 2);
  client.close_idle_connections();
}

FIBER_TEST(HttpClient, UrlAndConnectionErrors) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    http::Client client(fast_retries(2));
    EXPECT_EQ(client.get(background(), "https://127.0.0.1/").err, http::errc::unsupported_scheme);
    EXPECT_EQ(client.get(background(), "nonsense").err, http::errc::bad_url);
    EXPECT_EQ(client.get(background(), "http://127.0.0.1:99999/").err, http::errc::bad_url);
    auto [ln, err] = net::listen("127.0.0.1", 0);
    ASSERT_FALSE(err);
    const auto port = ln.port();
    (void)ln.close();
    auto [resp, rerr] = client.get(background(), "http://127.0.0.1:" + std::to_string(port) + "/");
    EXPECT_TRUE(rerr == std::errc::connection_refused) << rerr.message();
    EXPECT_EQ(client.stats().retries, 2);
  }
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

}  // namespace
}  // namespace spindle
