// The demo backends (see demo.hpp).
#include "demo.hpp"

#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <spindle/net/tcp.hpp>

namespace gateway {

namespace http = spindle::http;

struct DemoBackends::Service {
  std::string name;
  std::atomic<bool> failing{false};
  std::atomic<std::uint64_t> hits{0};
  std::uint16_t port = 0;
  std::unique_ptr<http::Server> server;
};

namespace {

// The value of `key` in a query string ("a=1&delay_ms=5"), or "".
std::string_view query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.size() > key.size() && pair.starts_with(key) && pair[key.size()] == '=') {
      return pair.substr(key.size() + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

DemoBackends::DemoBackends(const spindle::patterns::Clock& clock, std::chrono::nanoseconds slow_delay)
    : clock_(clock), slow_delay_(slow_delay) {
  for (const char* name : {"fast", "slow", "flaky"}) {
    auto s = std::make_unique<Service>();
    s->name = name;
    s->failing = (s->name == "flaky");
    services_.push_back(std::move(s));
  }
}

DemoBackends::~DemoBackends() {
  // Servers' destructors force-close what is left; the serve fibers return then.
  for (auto& s : services_) {
    if (s->server) s->server->close();
  }
  if (started_) wg_.wait();
}

std::string DemoBackends::start() {
  for (auto& sp : services_) {
    Service* s = sp.get();
    const bool slow = s->name == "slow";
    s->server = std::make_unique<http::Server>(
        [this, s, slow](const http::Request& req, const spindle::Context& ctx) {
          const std::uint64_t hit = s->hits.fetch_add(1, std::memory_order_relaxed) + 1;
          if (slow) {
            std::chrono::nanoseconds delay = slow_delay_;
            std::string_view ms = query_param(req.query(), "delay_ms");
            long v = 0;
            if (!ms.empty() && std::from_chars(ms.data(), ms.data() + ms.size(), v).ec == std::errc{} && v >= 0) {
              delay = std::chrono::milliseconds(v);
            }
            if (std::error_code ec = spindle::patterns::sleep_for(clock_, ctx, delay)) {
              return http::Response::text(503, "cancelled\n");
            }
          }
          if (s->failing.load(std::memory_order_relaxed)) {
            return http::Response::text(500, fmt::format("{}: injected failure\n", s->name));
          }
          http::Response r;
          r.body = nlohmann::json{{"backend", s->name}, {"path", req.target}, {"hit", hit}}.dump() + "\n";
          r.headers.set("Content-Type", "application/json");
          return r;
        },
        http::ServerOptions{.log = [](std::string_view) {}});
    auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
    if (err) return fmt::format("demo backend {}: listen: {}", s->name, err.message());
    s->port = ln.port();
    started_ = true;
    wg_.go([s, ln] { (void)s->server->serve(ln); });
  }
  return "";
}

std::vector<BackendSpec> DemoBackends::specs() const {
  std::vector<BackendSpec> out;
  for (const auto& s : services_) out.push_back({s->name, fmt::format("http://127.0.0.1:{}", s->port)});
  return out;
}

DemoBackends::Service* DemoBackends::find(std::string_view name) const {
  for (const auto& s : services_) {
    if (s->name == name) return s.get();
  }
  return nullptr;
}

bool DemoBackends::set_failing(std::string_view name, bool on) {
  Service* s = find(name);
  if (s == nullptr) return false;
  s->failing = on;
  return true;
}

bool DemoBackends::failing(std::string_view name) const {
  Service* s = find(name);
  return s != nullptr && s->failing.load();
}

std::uint64_t DemoBackends::hits(std::string_view name) const {
  Service* s = find(name);
  return s == nullptr ? 0 : s->hits.load();
}

std::error_code DemoBackends::shutdown(const spindle::Context& ctx) {
  std::error_code first;
  for (auto& s : services_) {
    if (!s->server) continue;
    if (std::error_code ec = s->server->shutdown(ctx); ec && !first) first = ec;
  }
  if (started_) {
    wg_.wait();
    started_ = false;
  }
  return first;
}

}  // namespace gateway
