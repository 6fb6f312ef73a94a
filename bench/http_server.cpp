// http_server: the spindle side of bench/http_compare. A hello-world HTTP/1.1 server on
// 127.0.0.1 (spindle::http::Server: Beast's parser and serializer over fiber sockets), run until
// SIGINT or SIGTERM, then shut down gracefully.
//
//   http_server [--port N] [--workers N] [--client-gone 0|1]
//   (--client-gone 0 turns off the per-request watch for clients that go away, to measure it)
//   -> prints "listening on 127.0.0.1:PORT" once it accepts connections
//
// The handler mirrors bench/peers/go-http/main.go byte for byte in the response body and
// Content-Type; both servers add Date and Content-Length.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include <spindle/context.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/runtime.hpp>
#include <spindle/waitgroup.hpp>

int main(int argc, char** argv) {
  int port = 8080;
  bool client_gone = true;
  spindle::Options opts;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--port") == 0) port = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--workers") == 0) opts.workers = std::atoi(argv[i + 1]);
    else if (std::strcmp(argv[i], "--client-gone") == 0) client_gone = std::atoi(argv[i + 1]) != 0;
    else {
      std::fprintf(stderr, "usage: %s [--port N] [--workers N] [--client-gone 0|1]\n", argv[0]);
      return 2;
    }
  }
  return spindle::run(opts, [&] {
    namespace http = spindle::http;
    http::ServerOptions so;
    so.detect_client_gone = client_gone;
    http::Server server(
        [](const http::Request&, const spindle::Context&) { return http::Response::text(200, "Hello, World!\n"); },
        so);
    auto [ln, err] = spindle::net::listen("127.0.0.1", static_cast<std::uint16_t>(port));
    if (err) {
      fmt::print(stderr, "listen: {}\n", err.message());
      return 1;
    }
    auto sigs = spindle::signal::notify({SIGINT, SIGTERM});
    spindle::WaitGroup wg;
    wg.go([&server, ln = ln] { (void)server.serve(ln); });
    fmt::print("listening on 127.0.0.1:{} ({} workers)\n", ln.port(), spindle::num_workers());
    std::fflush(stdout);
    (void)sigs.recv();
    auto [ctx, cancel] = spindle::with_timeout(spindle::background(), std::chrono::seconds(5));
    (void)server.shutdown(ctx);
    wg.wait();
    spindle::signal::stop(sigs);
    return 0;
  });
}
