#include "origin.hpp"

#include <charconv>
#include <string_view>

#include <spindle/context.hpp>
#include <spindle/net/tcp.hpp>

namespace pipeline {
namespace {

spindle::http::Response serve(const Corpus& corpus, const spindle::http::Request& req) {
  using spindle::http::Response;
  const std::string_view path = req.path();
  constexpr std::string_view kPrefix = "/docs/";
  if (req.method != "GET") return Response::text(405, "method not allowed\n");
  if (path == "/") {
    return Response::text(200, "spindle pipeline origin: GET /docs/0 .. /docs/" +
                                   std::to_string(corpus.spec().docs - 1) + "\n");
  }
  if (path.starts_with(kPrefix)) {
    const std::string_view digits = path.substr(kPrefix.size());
    std::uint64_t index = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (ec == std::errc() && end == digits.data() + digits.size() && !digits.empty() &&
        index < corpus.spec().docs) {
      Response r;
      r.status = 200;
      r.headers.set("Content-Type", "application/json");
      r.body = corpus.document(index);
      return r;
    }
  }
  return Response::text(404, "not found\n");
}

}  // namespace

Origin::Origin(const Corpus& corpus)
    : corpus_(corpus),
      server_([this](const spindle::http::Request& req, const spindle::Context&) { return serve(corpus_, req); },
              spindle::http::ServerOptions{.log = [](std::string_view) {}}) {}

Origin::~Origin() { stop(std::chrono::seconds(1)); }

std::error_code Origin::start() {
  auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
  if (err) return err;
  port_ = ln.port();
  running_ = true;
  wg_.go([this, ln] { (void)server_.serve(ln); });
  return {};
}

std::string Origin::base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string Origin::url(std::uint64_t index) const { return base_url() + "/docs/" + std::to_string(index); }

void Origin::stop(spindle::Duration grace) {
  if (!running_) return;
  running_ = false;
  auto [ctx, cancel] = spindle::with_timeout(spindle::background(), grace);
  (void)server_.shutdown(ctx);
  wg_.wait();
}

}  // namespace pipeline
