// An HTTP/1.1 client: context-aware calls, timeouts, a keep-alive connection pool, retries with
// exponential backoff and jitter for idempotent requests, request IDs from the context.
//
//   spindle::http::Client client;
//   auto ctx = spindle::with_value(parent, spindle::http::kRequestId, std::string("req-42"));
//   auto [resp, err] = client.get(ctx, "http://127.0.0.1:8080/status");
//   if (!err && resp.status == 200) ...
//
// One call: pick an idle pooled connection to host:port that is still alive (else dial), write
// the request, read the response (Beast's parser; no hand-written HTTP), and return the
// connection to the pool when both sides keep it alive and it was fully read. The context (and
// ClientOptions::timeout, and attempt_timeout per attempt) bounds everything, dial included: a
// cancelled call closes its connection and returns ctx.err() (or the timeout context's
// deadline_exceeded).
//
// Retries (idempotent methods only: GET, HEAD, OPTIONS, TRACE, PUT, DELETE, or any request
// with an Idempotency-Key header): after a transport error (refused, reset, EOF before a
// response, an attempt timeout) or a status in retry_statuses, up to max_retries more attempts,
// sleeping backoff_base * 2^k (capped at backoff_max) with "equal jitter" (half fixed, half
// random) between them; the sleep honours the context. A request that fails on a reused pooled
// connection before any response byte arrived is retried once at once on a fresh one, without
// counting as a retry (the server may close an idle connection at any moment; Go does the
// same). When retries run out, the last response (e.g. a 503) or error is returned.
//
// Headers the client adds unless present: Host, User-Agent, Content-Length (from the body),
// X-Request-ID (the context's http::kRequestId, if bound).
//
// Thread-safety: any number of fibers may call one Client concurrently. The destructor closes
// the idle connections; calls must have returned by then.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <spindle/clock.hpp>
#include <spindle/context.hpp>
#include <spindle/http/message.hpp>
#include <spindle/net/tcp.hpp>

namespace spindle::http {

struct ClientOptions {
  Duration timeout{};          // per call, all attempts included; zero: the context alone
  Duration attempt_timeout{};  // per attempt; zero: none
  int max_retries = 2;         // extra attempts for idempotent requests
  Duration backoff_base = std::chrono::milliseconds(20);
  Duration backoff_max = std::chrono::seconds(1);
  std::vector<int> retry_statuses = {502, 503, 504};
  std::size_t max_idle_per_host = 64;
  Duration idle_timeout = std::chrono::seconds(90);  // pooled connections older are dropped
  std::size_t max_header_bytes = 64 * 1024;
  std::size_t max_body_bytes = 64 * 1024 * 1024;
  std::string user_agent = "spindle-http/0.1";
};

struct ClientStats {
  std::int64_t dials = 0;     // new connections
  std::int64_t reused = 0;    // calls served on a pooled connection
  std::int64_t retries = 0;   // extra attempts made (backoff retries)
  std::int64_t idle = 0;      // connections in the pool now
};

class Client {
 public:
  explicit Client(ClientOptions opts = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // GET url ("http://host[:port][/path][?query]").
  net::Result<Response> get(const Context& ctx, std::string_view url);
  // `req` with its target taken from url (method, headers and body from req).
  net::Result<Response> request(const Context& ctx, std::string_view url, Request req);
  // `req` (method, target, headers, body) sent to host:port.
  net::Result<Response> request(const Context& ctx, std::string_view host, std::uint16_t port, Request req);

  // Closes every pooled idle connection.
  void close_idle_connections();
  [[nodiscard]] ClientStats stats() const noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace spindle::http
