// An HTTP/1.1 server: a fiber per connection, keep-alive, limits, timeouts, graceful shutdown
// (Go's net/http Server, on Boost.Beast's parser and serializer over spindle's fiber sockets).
//
//   spindle::http::Server server([](const http::Request& req, const Context& ctx) {
//     return http::Response::text(200, "hello\n");
//   });
//   auto [ln, err] = spindle::net::listen("127.0.0.1", 8080);
//   spindle::go([&] { (void)server.serve(ln); });
//   ...
//   auto [ctx, cancel] = spindle::with_timeout(spindle::background(), 5s);
//   server.shutdown(ctx);     // stop accepting, drain, force-close what is left at the deadline
//
// Per connection (one fiber): wait up to idle_timeout for a request's first bytes (read_timeout
// for a new connection), read its header within read_header_timeout and the whole request
// within read_timeout (a client that trickles its header, slowloris-style, gets 408 and is
// closed), call the handler, write the response within write_timeout, and loop while both sides
// keep the connection alive. Bad requests are answered and the connection closed:
//   400 malformed, 408 header/body too slow, 413 body over max_body_bytes (from Content-Length
//   at once, or while reading a chunked body), 431 header over max_header_bytes,
//   500 the handler threw a std::exception (logged; other exceptions end the process).
// An idle or half-received connection that times out is just closed, as Go does.
//
// The handler runs in the connection's fiber with a request context that is cancelled when the
// client goes away (a background read notices EOF or a reset while the handler runs, as Go's
// connReader does), when the handler returns, or when shutdown's deadline passes / close() is
// called. If the client sent X-Request-ID, the context carries it under http::kRequestId.
// The handler may block (it is a fiber); it should honour the context.
//
// Thread-safety: serve, shutdown, close and stats may be called from any fibers concurrently.
// Lifetime: the destructor force-closes every connection (close()) and waits for every
// connection fiber and every serve() call to return; so do not destroy a Server from inside one
// of its handlers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/context.hpp>
#include <spindle/http/message.hpp>
#include <spindle/net/tcp.hpp>

namespace spindle::http {

using Handler = std::function<Response(const Request&, const Context&)>;

// Zero durations mean "no limit" (as in Go); the defaults are finite, unlike Go's.
struct ServerOptions {
  Duration read_header_timeout = std::chrono::seconds(10);
  Duration read_timeout = std::chrono::seconds(30);   // whole request, header and body
  Duration write_timeout = std::chrono::seconds(30);  // one response
  Duration idle_timeout = std::chrono::seconds(60);   // between keep-alive requests
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 8 * 1024 * 1024;
  // Notice a client that goes away while its handler runs (one parked read per request).
  bool detect_client_gone = true;
  // Where progress and handler failures are reported; default: "http: ..." lines on stderr.
  std::function<void(std::string_view)> log;
};

struct ServerStats {
  std::int64_t connections_accepted = 0;
  std::int64_t connections_open = 0;
  std::int64_t requests = 0;      // handled (the handler returned)
  std::int64_t in_flight = 0;     // connections between a request's first byte and its response
};

class Server {
 public:
  explicit Server(Handler handler, ServerOptions opts = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Accepts connections on `ln` until shutdown() or close() (then returns errc::server_closed)
  // or a fatal accept error (returned; temporary ones such as EMFILE are retried with backoff,
  // 5 ms doubling to 1 s, as Go does). Serving connections continue after it returns; shutdown
  // and the destructor deal with them. The Server owns `ln` from here on (it closes it).
  // Several serve() calls (several listeners) may run at once.
  std::error_code serve(net::Listener ln);
  // listen(host, port) + serve().
  std::error_code listen_and_serve(std::string_view host, std::uint16_t port);

  // Graceful shutdown (Go's Server.Shutdown): closes the listeners (new connections are
  // refused), closes idle connections, and waits for in-flight requests to finish (their
  // connections then close instead of staying alive), logging progress. Returns {} when every
  // connection is gone; when ctx is done first, force-closes what remains (cancelling the
  // request contexts) and returns ctx.err() without waiting for those handlers (the destructor
  // does). Blocks the calling fiber. Calling it again is allowed.
  std::error_code shutdown(const Context& ctx);
  // Immediate close: listeners and every connection closed, request contexts cancelled.
  // Never blocks on handlers.
  void close();

  [[nodiscard]] ServerStats stats() const noexcept;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace spindle::http
