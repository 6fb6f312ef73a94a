// Helpers for the net tests: descriptor counting and a loopback echo server.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <string>

#include <gtest/gtest.h>

#include <spindle/net/tcp.hpp>
#include <spindle/runtime.hpp>
#include <spindle/waitgroup.hpp>

#include "net/poller.hpp"
#include "support/fds.hpp"

namespace spindle::testing {

// open_fds() once the runtime's netpoller exists (its epoll and event descriptors live as long
// as the runtime, so they must be in the baseline).
inline int baseline_fds() {
  (void)spindle::detail::netpoller();
  return open_fds();
}

// Accepts until the listener is closed; echoes every connection until EOF. stop() closes the
// listener and waits for every fiber it started.
class EchoServer {
 public:
  EchoServer() {
    auto [ln, err] = net::listen("127.0.0.1", 0);
    EXPECT_FALSE(err) << err.message();
    ln_ = ln;
    port_ = ln.port();
    wg_.go([this] {
      for (;;) {
        auto [conn, err] = ln_.accept();
        if (err) return;
        ++accepted_;
        wg_.go([conn]() mutable {
          char buf[8 * 1024];
          for (;;) {
            auto [n, err] = conn.read(buf);
            if (err) break;
            if (conn.write_all({buf, n}).err) break;
          }
          (void)conn.close();
        });
      }
    });
  }
  ~EchoServer() { stop(); }
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    (void)ln_.close();
    wg_.wait();
  }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] long accepted() const { return accepted_.load(); }

 private:
  net::Listener ln_;
  WaitGroup wg_;
  std::atomic<long> accepted_{0};
  std::uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace spindle::testing
