// The HTTP server over real loopback sockets: concurrent clients, keep-alive, limits (400, 408,
// 413, 431), client-gone cancellation, handler failures, graceful and forced shutdown; every
// test also checks that no fiber (fixture) and no descriptor (/proc/self/fd) is left behind.
#include <atomic>
#include <chrono>
#include <string>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "net/http_support.hpp"
#include "net/net_support.hpp"
#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using testing::baseline_fds;
using testing::open_fds;
using testing::raw_exchange;
using testing::starts_with;
using testing::TestServer;

http::Response echo(const http::Request& req, const Context&) {
  http::Response r = http::Response::text(200, req.method + " " + req.target + " " + req.body);
  r.headers.add("X-Seen-Request-ID", std::string(req.headers.get("X-Request-ID")));
  return r;
}

FIBER_TEST(HttpServer, ServesManyConcurrentClients) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    TestServer server(echo);
    http::Client client;
    const long fibers = testing::scaled(200, 50, 30);
    constexpr int kEach = 10;
    std::atomic<long> ok{0};
    WaitGroup wg;
    for (long f = 0; f < fibers; ++f) {
      wg.go([&, f] {
        for (int i = 0; i < kEach; ++i) {
          const std::string path = "/f" + std::to_string(f) + "/r" + std::to_string(i);
          auto [resp, err] = client.get(background(), server.url(path));
          if (err) {
            ADD_FAILURE() << err.message();
            continue;
          }
          if (resp.status == 200 && resp.body == "GET " + path + " ") ++ok;
        }
      });
    }
    wg.wait();
    EXPECT_EQ(ok.load(), fibers * kEach);
    EXPECT_EQ(server.server().stats().requests, fibers * kEach);
    EXPECT_LE(client.stats().dials, fibers);  // keep-alive: at most one connection per fiber
    client.close_idle_connections();
    EXPECT_FALSE(server.stop());
  }
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(HttpServer, KeepAliveServesSequentialRequestsOnOneConnection) {
  TestServer server(echo);
  http::Client client;
  for (int i = 0; i < 20; ++i) {
    auto [resp, err] = client.get(background(), server.url("/x"));
    ASSERT_FALSE(err) << err.message();
    EXPECT_EQ(resp.status, 200);
  }
  EXPECT_EQ(server.server().stats().connections_accepted, 1);
  EXPECT_EQ(client.stats().dials, 1);
  EXPECT_EQ(client.stats().reused, 19);
  client.close_idle_connections();
}

FIBER_TEST(HttpServer, MethodsBodiesHeadersAndHead) {
  TestServer server([](const http::Request& req, const Context&) {
    http::Response r;
    r.status = req.path() == "/created" ? 201 : 200;
    r.headers.add("Content-Type", "application/json");
    r.headers.add("X-Query", std::string(req.query()));
    r.headers.add("X-Method", req.method);
    r.body = "{\"len\":" + std::to_string(req.body.size()) + "}";
    return r;
  });
  http::Client client;
  http::Request post;
  post.method = "POST";
  post.body = std::string(100000, 'b');
  post.headers.add("Content-Type", "text/plain");
  auto [resp, err] = client.request(background(), server.url("/created?a=1"), post);
  ASSERT_FALSE(err) << err.message();
  EXPECT_EQ(resp.status, 201);
  EXPECT_EQ(resp.body, "{\"len\":100000}");
  EXPECT_EQ(resp.headers.get("content-type"), "application/json");  // case-insensitive
  EXPECT_EQ(resp.headers.get("X-Query"), "a=1");
  EXPECT_EQ(resp.headers.get("X-Method"), "POST");
  EXPECT_FALSE(resp.headers.get("Date").empty());

  http::Request head;
  head.method = "HEAD";
  auto [h, herr] = client.request(background(), server.url("/"), head);
  ASSERT_FALSE(herr) << herr.message();
  EXPECT_EQ(h.status, 200);
  EXPECT_TRUE(h.body.empty());
  EXPECT_EQ(h.headers.get("Content-Length"), "9");  // that of the GET response: {"len":0}
  client.close_idle_connections();
}

FIBER_TEST(HttpServer, MalformedRequestsGet400AndTheConnectionCloses) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    TestServer server(echo);
    for (std::string_view bad : {std::string_view("\x01\x02 nonsense\r\n\r\n"),
                                 std::string_view("GET / HTTP/1.1\r\nBad Header Line\r\n\r\n"),
                                 std::string_view("GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
                                 std::string_view("GET / HTTP/7.5\r\n\r\n")}) {
      const std::string got = raw_exchange(server.port(), bad);
      EXPECT_TRUE(starts_with(got, "HTTP/1.1 400 ")) << "for " << bad << " got " << got;
      EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;
    }
    EXPECT_FALSE(server.stop());
  }
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(HttpServer, OversizedHeaderGets431AndOversizedBodyGets413) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    http::ServerOptions opts;
    opts.max_header_bytes = 4096;
    opts.max_body_bytes = 1024;
    TestServer server(echo, opts);
    const std::string big_header = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(20000, 'h') + "\r\n\r\n";
    EXPECT_TRUE(starts_with(raw_exchange(server.port(), big_header), "HTTP/1.1 431 "));
    // A declared length over the limit is refused before the body is read.
    const std::string big_length = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
    EXPECT_TRUE(starts_with(raw_exchange(server.port(), big_length), "HTTP/1.1 413 "));
    // A chunked body that grows over the limit is refused while it is read.
    std::string chunked = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 8; ++i) chunked += "200\r\n" + std::string(0x200, 'c') + "\r\n";
    chunked += "0\r\n\r\n";
    EXPECT_TRUE(starts_with(raw_exchange(server.port(), chunked), "HTTP/1.1 413 "));
    // Within the limits, it works.
    const std::string fine = "POST /ok HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    const std::string got = raw_exchange(server.port(), fine);
    EXPECT_TRUE(starts_with(got, "HTTP/1.1 200 ")) << got;
    EXPECT_NE(got.find("POST /ok abc"), std::string::npos) << got;
    EXPECT_FALSE(server.stop());
  }
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(HttpServer, SlowlorisGets408WithinTheHeaderTimeout) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    http::ServerOptions opts;
    opts.read_header_timeout = 150ms;
    TestServer server(echo, opts);
    auto [c, err] = net::dial("127.0.0.1", server.port());
    ASSERT_FALSE(err);
    std::string answer;
    WaitGroup wg;
    wg.go([&, c = c]() mutable {  // reads until the server closes
      c.set_read_deadline(deadline_after(10s));
      char buf[512];
      for (;;) {
        auto [n, e] = c.read(buf);
        if (e) return;
        answer.append(buf, n);
      }
    });
    // A header that never ends: one field every 20 ms (the slowness is the point of the test).
    (void)c.write_all("GET / HTTP/1.1\r\nHost: x\r\n");
    const auto start = Clock::now();
    for (int i = 0; i < 500 && Clock::now() - start < 5s; ++i) {
      if (c.write_all("X-Drip-" + std::to_string(i) + ": y\r\n").err) break;
      if (!answer.empty()) break;
      this_fiber::sleep_for(20ms);
    }
    wg.wait();
    (void)c.close();
    EXPECT_TRUE(starts_with(answer, "HTTP/1.1 408 ")) << answer;
    EXPECT_GE(Clock::now() - start, 150ms);
    EXPECT_FALSE(server.stop());
  }
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(HttpServer, IdleConnectionIsClosedAfterIdleTimeout) {
  http::ServerOptions opts;
  opts.idle_timeout = 50ms;
  TestServer server(echo, opts);
  auto [c, err] = net::dial("127.0.0.1", server.port());
  ASSERT_FALSE(err);
  ASSERT_FALSE(c.write_all("GET /a HTTP/1.1\r\nHost: x\r\n\r\n").err);
  c.set_read_deadline(deadline_after(10s));
  std::string got;
  char buf[512];
  for (;;) {  // the response, then EOF once the connection has been idle for 50 ms
    auto [n, e] = c.read(buf);
    if (e) {
      EXPECT_EQ(e, net::errc::eof) << e.message();
      break;
    }
    got.append(buf, n);
  }
  EXPECT_TRUE(starts_with(got, "HTTP/1.1 200 ")) << got;
  (void)c.close();
}

FIBER_TEST(HttpServer, ClientGoingAwayCancelsTheRequestContext) {
  Chan<std::error_code> seen(1);
  Chan<int> entered(1);
  TestServer server([&](const http::Request&, const Context& ctx) {
    entered.send(1);
    auto r = ctx.done().recv_for(10s);  // only the client leaving can end this early
    seen.send(r.ok() || r.status == ChanStatus::closed ? ctx.err() : std::error_code(net::errc::timeout));
    return http::Response::text(200, "late");
  });
  auto [c, err] = net::dial("127.0.0.1", server.port());
  ASSERT_FALSE(err);
  ASSERT_FALSE(c.write_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n").err);
  (void)entered.recv();
  (void)c.close();
  EXPECT_EQ(*seen.recv(), errc::canceled);
}

FIBER_TEST(HttpServer, HandlerExceptionGives500) {
  TestServer server([](const http::Request&, const Context&) -> http::Response {
    throw std::runtime_error("handler broke");
  });
  const std::string got = raw_exchange(server.port(), "GET /boom HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(starts_with(got, "HTTP/1.1 500 ")) << got;
  EXPECT_TRUE(server.logs().contains("handler broke"));
}

FIBER_TEST(HttpServer, RequestIdFromTheContextReachesTheHandlerAndItsContext) {
  Chan<std::string> in_ctx(1);
  TestServer server([&](const http::Request& req, const Context& ctx) {
    const std::string* id = ctx.value(http::kRequestId);
    in_ctx.send(id != nullptr ? *id : std::string("<none>"));
    return echo(req, ctx);
  });
  http::Client client;
  Context ctx = with_value(background(), http::kRequestId, std::string("req-42"));
  auto [resp, err] = client.get(ctx, server.url("/"));
  ASSERT_FALSE(err) << err.message();
  EXPECT_EQ(resp.headers.get("X-Seen-Request-ID"), "req-42");
  EXPECT_EQ(*in_ctx.recv(), "req-42");
  client.close_idle_connections();
}

FIBER_TEST(HttpServer, GracefulShutdownFinishesInFlightAndRefusesNewConnections) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    constexpr int kSlow = 3;
    WaitGroup entered;
    entered.add(kSlow);
    Chan<int> release(0);
    TestServer server([&](const http::Request& req, const Context&) {
      if (req.path() == "/slow") {
        entered.done();
        (void)release.recv();  // held until the test has checked that new connections fail
      }
      return http::Response::text(200, "done " + req.target);
    });
    http::Client idle_client;  // leaves one idle keep-alive connection behind
    ASSERT_FALSE(idle_client.get(background(), server.url("/warm")).err);
    // The client has its response; the server's side turns idle just after writing it.
    while (server.server().stats().in_flight != 0) this_fiber::yield();

    std::atomic<int> finished{0};
    WaitGroup clients;
    for (int i = 0; i < kSlow; ++i) {
      clients.go([&] {
        http::Client c;
        auto [resp, err] = c.get(background(), server.url("/slow"));
        EXPECT_FALSE(err) << err.message();
        EXPECT_EQ(resp.status, 200);
        EXPECT_EQ(resp.headers.get("Connection"), "close");  // not kept alive past shutdown
        ++finished;
      });
    }
    entered.wait();
    std::error_code shutdown_result = errc::canceled;
    WaitGroup stopper;
    stopper.go([&] {
      auto [ctx, cancel] = with_timeout(background(), 20s);
      shutdown_result = server.server().shutdown(ctx);
    });
    while (!server.logs().contains("stopped accepting")) this_fiber::yield();
    // New connections are refused, in-flight ones are still running.
    auto [late, late_err] = net::dial("127.0.0.1", server.port());
    EXPECT_TRUE(late_err == std::errc::connection_refused) << late_err.message();
    EXPECT_EQ(finished.load(), 0);
    for (int i = 0; i < kSlow; ++i) release.send(i);
    clients.wait();
    stopper.wait();
    EXPECT_EQ(finished.load(), kSlow);
    EXPECT_FALSE(shutdown_result) << shutdown_result.message();
    EXPECT_TRUE(server.logs().contains("closed 1 idle connection"));
    EXPECT_TRUE(server.logs().contains("shutdown: complete"));
    EXPECT_EQ(server.serve_result(), http::errc::server_closed);
    idle_client.close_idle_connections();
  }
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(HttpServer, ShutdownPastItsDeadlineCutsTheRest) {
  const int fds = baseline_fds();
  const std::string fd_names = testing::fd_list();
  std::atomic<int> handler_saw_cancel{0};
  {
    WaitGroup entered;
    entered.add(2);
    TestServer server([&](const http::Request&, const Context& ctx) {
      entered.done();
      (void)ctx.done().recv_for(30s);  // ignores shutdown until its context is cancelled
      if (ctx.err()) ++handler_saw_cancel;
      return http::Response::text(200, "too late");
    });
    std::atomic<int> cut{0};
    WaitGroup clients;
    for (int i = 0; i < 2; ++i) {
      clients.go([&] {
        http::ClientOptions o;
        o.max_retries = 0;
        http::Client c(o);
        auto [resp, err] = c.get(background(), server.url("/stuck"));
        if (err) ++cut;  // the connection was closed without a response
      });
    }
    entered.wait();
    auto [ctx, cancel] = with_timeout(background(), 100ms);
    EXPECT_EQ(server.server().shutdown(ctx), errc::deadline_exceeded);
    EXPECT_GE(Clock::now(), *ctx.deadline());
    clients.wait();
    EXPECT_EQ(cut.load(), 2);
    EXPECT_TRUE(server.logs().contains("force-closed 2 connection"));
    EXPECT_FALSE(server.stop());  // already shut down: returns at once
  }  // ~Server waits for the cut handlers to return
  EXPECT_EQ(handler_saw_cancel.load(), 2);
  EXPECT_EQ(open_fds(), fds) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

}  // namespace
}  // namespace spindle
