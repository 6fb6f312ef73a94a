// Demo search backends (demo.hpp).
#include "demo.hpp"

#include <algorithm>
#include <charconv>
#include <numeric>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <spindle/context.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/this_fiber.hpp>

#include "common/duration.hpp"

namespace search_aggregator {

namespace {

std::uint64_t fnv1a(std::string_view a, std::string_view b, std::uint64_t salt) {
  std::uint64_t h = 14695981039346656037ull ^ salt;
  for (const unsigned char c : a) h = (h ^ c) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (const unsigned char c : b) h = (h ^ c) * 1099511628211ull;
  return h;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value of `key` in a query string, percent-decoded ('+' as space).
std::string query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view kv = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    const auto eq = kv.find('=');
    if (kv.substr(0, eq) != key) continue;
    const std::string_view v = eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (v[i] == '%' && i + 2 < v.size() && hex_value(v[i + 1]) >= 0 && hex_value(v[i + 2]) >= 0) {
        out += static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]));
        i += 2;
      } else {
        out += v[i] == '+' ? ' ' : v[i];
      }
    }
    return out;
  }
  return {};
}

}  // namespace

bool parse_demo_specs(std::string_view s, std::vector<DemoSpec>& out, std::string& error) {
  out.clear();
  while (!s.empty()) {
    const auto comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    DemoSpec spec;
    const auto colon = item.find(':');
    spec.name = std::string(item.substr(0, colon));
    if (spec.name.empty()) {
      error = fmt::format("demo backend '{}': empty name", item);
      return false;
    }
    item = colon == std::string_view::npos ? std::string_view() : item.substr(colon + 1);
    while (!item.empty()) {
      const auto c = item.find(':');
      const std::string_view part = item.substr(0, c);
      item = c == std::string_view::npos ? std::string_view() : item.substr(c + 1);
      if (part == "fail") {
        spec.mode = DemoMode::fail;
      } else if (part == "garbage") {
        spec.mode = DemoMode::garbage;
      } else if (const auto d = samples::parse_flag_duration(part)) {
        spec.latency = *d;
      } else {
        error = fmt::format("demo backend {}: '{}' is neither a duration nor fail/garbage", spec.name, part);
        return false;
      }
    }
    out.push_back(std::move(spec));
  }
  if (out.empty()) error = "no demo backends";
  return !out.empty();
}

std::string demo_results_json(std::string_view backend, std::string_view query) {
  constexpr int kPool = 8, kHits = 5;
  std::vector<int> docs(kPool);
  std::iota(docs.begin(), docs.end(), 0);
  // Rank the pool by a per-(backend, query, doc) hash: a deterministic, backend-specific order.
  std::sort(docs.begin(), docs.end(), [&](int a, int b) {
    return fnv1a(backend, query, static_cast<std::uint64_t>(a)) < fnv1a(backend, query, static_cast<std::uint64_t>(b));
  });
  nlohmann::json results = nlohmann::json::array();
  for (int r = 0; r < kHits; ++r) {
    const int d = docs[static_cast<std::size_t>(r)];
    results.push_back({{"title", fmt::format("{} - document {}", query, d)},
                       {"url", fmt::format("https://docs.example/{}/{}", url_encode(query), d)},
                       {"score", 1.0 - r * 0.15}});
  }
  return nlohmann::json{{"backend", backend}, {"results", results}}.dump();
}

struct DemoBackends::Running {
  DemoSpec spec;
  std::uint16_t port = 0;
  std::unique_ptr<spindle::http::Server> server;
};

DemoBackends::DemoBackends() = default;
DemoBackends::~DemoBackends() { stop(); }

std::error_code DemoBackends::start(const std::vector<DemoSpec>& specs) {
  for (const DemoSpec& spec : specs) {
    auto run = std::make_unique<Running>();
    run->spec = spec;
    spindle::http::ServerOptions so;
    so.log = [](std::string_view) {};  // the demo's own output is the aggregator's report
    run->server = std::make_unique<spindle::http::Server>(
        [this, spec](const spindle::http::Request& req, const spindle::Context& ctx) {
          requests_.fetch_add(1);
          if (spec.latency > Duration::zero()) {
            if (spindle::this_fiber::sleep_for(ctx, spec.latency)) {
              cancelled_.fetch_add(1);  // the client went away (or shutdown): stop working
              return spindle::http::Response::text(503, "cancelled\n");
            }
          }
          completed_.fetch_add(1);
          switch (spec.mode) {
            case DemoMode::fail: return spindle::http::Response::text(500, "backend exploded\n");
            case DemoMode::garbage: return spindle::http::Response::text(200, "<html>not json</html>");
            case DemoMode::ok: break;
          }
          spindle::http::Response resp;
          resp.headers.set("Content-Type", "application/json");
          resp.body = demo_results_json(spec.name, query_param(req.query(), "q"));
          return resp;
        },
        so);
    auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
    if (err) return err;
    run->port = ln.port();
    serving_.go([s = run->server.get(), ln]() mutable { (void)s->serve(ln); });
    servers_.push_back(std::move(run));
  }
  return {};
}

std::vector<Backend> DemoBackends::backends() const {
  std::vector<Backend> out;
  for (const auto& r : servers_) {
    out.push_back({r->spec.name, fmt::format("http://127.0.0.1:{}/search", r->port)});
  }
  return out;
}

void DemoBackends::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& r : servers_) {
    auto [ctx, cancel] = spindle::with_timeout(spindle::background(), std::chrono::seconds(5));
    (void)r->server->shutdown(ctx);
  }
  serving_.wait();
  servers_.clear();
}

}  // namespace search_aggregator
