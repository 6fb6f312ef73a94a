// Helpers for the HTTP tests: a loopback server run in a fiber, and a raw exchange that sends
// bytes as written and returns everything the server answers until it closes.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include <spindle/context.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/waitgroup.hpp>

namespace spindle::testing {

class Logs {
 public:
  void add(std::string_view s) {
    std::lock_guard lock(mu_);
    lines_.emplace_back(s);
  }
  [[nodiscard]] std::vector<std::string> lines() const {
    std::lock_guard lock(mu_);
    return lines_;
  }
  [[nodiscard]] bool contains(std::string_view needle) const {
    std::lock_guard lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(needle) != std::string::npos) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;  // never held across a park
  std::vector<std::string> lines_;
};

class TestServer {
 public:
  explicit TestServer(http::Handler handler, http::ServerOptions opts = {})
      : server_(std::move(handler), with_log(std::move(opts), logs_)) {
    auto [ln, err] = net::listen("127.0.0.1", 0);
    EXPECT_FALSE(err) << err.message();
    port_ = ln.port();
    wg_.go([this, ln] { serve_result_ = server_.serve(ln); });
  }
  ~TestServer() { stop(); }

  // Graceful shutdown (bounded), then waits for serve() to return.
  std::error_code stop(std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    if (stopped_) return {};
    stopped_ = true;
    auto [ctx, cancel] = with_timeout(background(), limit);
    const std::error_code ec = server_.shutdown(ctx);
    wg_.wait();
    return ec;
  }

  [[nodiscard]] http::Server& server() { return server_; }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] std::string url(std::string_view path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  [[nodiscard]] const Logs& logs() const { return logs_; }
  // What serve() returned; waits for it to return (call after shutdown or close). Go's Serve
  // returns as soon as its listener closes, but shutdown() does not wait for that.
  [[nodiscard]] std::error_code serve_result() {
    wg_.wait();
    return serve_result_;
  }

 private:
  static http::ServerOptions with_log(http::ServerOptions o, Logs& logs) {
    if (!o.log) o.log = [&logs](std::string_view s) { logs.add(s); };
    return o;
  }

  Logs logs_;
  http::Server server_;
  WaitGroup wg_;
  std::uint16_t port_ = 0;
  std::error_code serve_result_;
  bool stopped_ = false;
};

// Sends `request` verbatim and returns every byte the server sends until it closes (or `limit`).
inline std::string raw_exchange(std::uint16_t port, std::string_view request,
                                std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto [c, err] = net::dial("127.0.0.1", port);
  EXPECT_FALSE(err) << err.message();
  if (err) return {};
  EXPECT_FALSE(c.write_all(request).err);
  c.set_read_deadline(deadline_after(limit));
  std::string out;
  char buf[2048];
  for (;;) {
    auto [n, e] = c.read(buf);
    if (e) break;
    out.append(buf, n);
  }
  (void)c.close();
  return out;
}

inline bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

}  // namespace spindle::testing
