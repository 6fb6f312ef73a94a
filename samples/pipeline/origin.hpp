// The origin: an HTTP server on 127.0.0.1 (an ephemeral port) that serves the generated corpus,
// so the pipeline has something real to fetch without any network or files.
//
//   GET /docs/<i>   200, document i as JSON (Corpus::document), for i < docs; else 404
//   GET /           200, a line saying what is served
//
// Built on spindle::http::Server: a fiber per connection, keep-alive (the fetchers' pooled
// connections are reused), graceful shutdown. Documents are generated per request: the origin
// holds no document in memory.
//
// Thread-safety: start() and stop() from one fiber; the handler runs on the server's fibers.
// Lifetime: the Corpus must outlive the Origin; stop() (or the destructor) joins the server.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/http/server.hpp>
#include <spindle/waitgroup.hpp>

#include "corpus.hpp"

namespace pipeline {

class Origin {
 public:
  explicit Origin(const Corpus& corpus);
  ~Origin();
  Origin(const Origin&) = delete;
  Origin& operator=(const Origin&) = delete;

  // Listens on 127.0.0.1:0 and serves in a fiber of its own.
  [[nodiscard]] std::error_code start();
  // "http://127.0.0.1:<port>/docs/<index>".
  [[nodiscard]] std::string url(std::uint64_t index) const;
  [[nodiscard]] std::string base_url() const;
  // Graceful shutdown within `grace` (then connections are closed), and joins.
  void stop(spindle::Duration grace);
  [[nodiscard]] spindle::http::ServerStats stats() const noexcept { return server_.stats(); }

 private:
  const Corpus& corpus_;
  spindle::http::Server server_;
  spindle::WaitGroup wg_;
  std::uint16_t port_ = 0;
  bool running_ = false;
};

}  // namespace pipeline
