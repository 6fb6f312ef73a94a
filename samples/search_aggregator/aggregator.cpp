// search_aggregator's fan-out, merge and helpers (aggregator.hpp has the design).
#include "aggregator.hpp"

#include <algorithm>
#include <atomic>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <spindle/http/client.hpp>
#include <spindle/patterns/bounded.hpp>

namespace search_aggregator {

std::string_view to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::answered: return "answered";
    case Outcome::failed: return "failed";
    case Outcome::timed_out: return "timed out";
    case Outcome::canceled: return "canceled";
    case Outcome::skipped: return "skipped";
  }
  return "?";
}

std::size_t SearchResult::count(Outcome o) const {
  return static_cast<std::size_t>(
      std::count_if(backends.begin(), backends.end(), [o](const BackendReport& r) { return r.outcome == o; }));
}

struct Aggregator::Impl {
  Impl(std::vector<Backend> b, Options o) : backends(std::move(b)), opts(std::move(o)), client(client_options()) {}

  static spindle::http::ClientOptions client_options() {
    spindle::http::ClientOptions c;
    c.max_retries = 0;  // a retry cannot beat the deadline; a straggler is a straggler
    return c;
  }

  std::vector<Backend> backends;
  Options opts;
  spindle::http::Client client;
};

Aggregator::Aggregator(std::vector<Backend> backends, Options opts) {
  if (backends.empty()) throw std::invalid_argument("search_aggregator: no backends");
  if (opts.max_concurrency <= 0) throw std::invalid_argument("search_aggregator: max_concurrency must be positive");
  if (opts.deadline < Duration::zero()) throw std::invalid_argument("search_aggregator: negative deadline");
  impl_ = std::make_unique<Impl>(std::move(backends), std::move(opts));
}

Aggregator::~Aggregator() = default;

SearchResult Aggregator::search(const spindle::Context& ctx, std::string_view query) {
  Impl& im = *impl_;
  const spindle::TimePoint start = spindle::now();
  const std::size_t n = im.backends.size();

  // The deadline (aggregator.hpp). Without one, a plain child so the code below is the same.
  spindle::patterns::ClockContext dl;
  if (im.opts.deadline > Duration::zero()) {
    dl = spindle::patterns::timeout_context(ctx, im.opts.deadline, spindle::patterns::clock_or_system(im.opts.clock));
  } else {
    auto c = spindle::with_cancel(ctx);
    dl.ctx = c.ctx;
    dl.cancel = std::move(c.cancel);
  }
  const spindle::Context dctx = dl.ctx;

  // One slot per backend, each written only by its own call; read after map_bounded returns
  // (ErrGroup::wait happens-after every call).
  std::vector<BackendReport> reports(n);
  std::vector<std::vector<Hit>> lists(n);
  for (std::size_t i = 0; i < n; ++i) reports[i].name = im.backends[i].name;
  std::atomic<int> in_flight{0}, max_in_flight{0};

  std::vector<std::size_t> order(n);
  for (std::size_t i = 0; i < n; ++i) order[i] = i;
  const std::string q = url_encode(query);

  (void)spindle::patterns::map_bounded(dctx, order, im.opts.max_concurrency, [&](const spindle::Context& c, std::size_t i) {
    // map_bounded may start an item whose slot only freed because the deadline passed: that
    // backend never had a chance, it stays `skipped` (and is not asked at all).
    if (dctx.err()) return std::error_code{};
    const int now_in = in_flight.fetch_add(1) + 1;
    for (int m = max_in_flight.load(); now_in > m && !max_in_flight.compare_exchange_weak(m, now_in);) {
    }
    BackendReport& rep = reports[i];
    const Backend& b = im.backends[i];
    const spindle::TimePoint t0 = spindle::now();
    const std::string url = b.url + (b.url.find('?') == std::string::npos ? "?q=" : "&q=") + q;
    auto [resp, err] = im.client.get(c, url);
    // The deadline decides first: a response completed after it is late, whatever it says.
    if (dctx.err()) {
      rep.outcome = spindle::patterns::timed_out(dctx) ? Outcome::timed_out : Outcome::canceled;
      rep.detail = err ? err.message() : "answered after the deadline";
    } else if (err) {
      rep.outcome = Outcome::failed;
      rep.detail = err.message();
    } else if (resp.status != 200) {
      rep.outcome = Outcome::failed;
      rep.status = resp.status;
      rep.detail = fmt::format("HTTP {}", resp.status);
    } else {
      rep.status = resp.status;
      std::string why;
      if (parse_hits(resp.body, lists[i], why)) {
        rep.outcome = Outcome::answered;
        rep.hits = lists[i].size();
      } else {
        lists[i].clear();
        rep.outcome = Outcome::failed;
        rep.detail = "bad JSON: " + why;
      }
    }
    rep.took = spindle::now() - t0;
    in_flight.fetch_sub(1);
    if (im.opts.on_report) im.opts.on_report(rep);
    return std::error_code{};  // a backend's failure is reported, never the group's failure
  });

  SearchResult out;
  std::vector<std::pair<std::string, std::vector<Hit>>> answered;
  for (std::size_t i = 0; i < n; ++i) {
    if (reports[i].outcome == Outcome::answered) answered.emplace_back(reports[i].name, std::move(lists[i]));
  }
  out.hits = fuse(answered, im.opts.top_k);
  out.backends = std::move(reports);
  out.max_in_flight = max_in_flight.load();
  out.took = spindle::now() - start;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing and merging

bool parse_hits(std::string_view body, std::vector<Hit>& out, std::string& error) {
  out.clear();
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    error = "not JSON";
    return false;
  }
  if (!j.is_object() || !j.contains("results") || !j["results"].is_array()) {
    error = "no \"results\" array";
    return false;
  }
  for (const auto& r : j["results"]) {
    if (!r.is_object() || !r.contains("url") || !r["url"].is_string()) {
      error = "a result without a \"url\" string";
      out.clear();
      return false;
    }
    Hit h;
    h.url = r["url"].get<std::string>();
    if (r.contains("title") && r["title"].is_string()) h.title = r["title"].get<std::string>();
    if (r.contains("score") && r["score"].is_number()) h.score = r["score"].get<double>();
    out.push_back(std::move(h));
  }
  return true;
}

std::vector<Hit> fuse(const std::vector<std::pair<std::string, std::vector<Hit>>>& lists, std::size_t top_k) {
  constexpr double kK = 60;  // RRF's constant (the paper's choice; damps the top ranks' weight)
  struct Acc {
    Hit hit;
    std::size_t best_rank = SIZE_MAX;
    std::vector<std::pair<std::size_t, std::string>> by;  // (rank, backend)
  };
  std::unordered_map<std::string, Acc> acc;
  for (const auto& [backend, hits] : lists) {
    for (std::size_t r = 0; r < hits.size(); ++r) {
      Acc& a = acc[hits[r].url];
      if (std::find_if(a.by.begin(), a.by.end(), [&](const auto& p) { return p.second == backend; }) != a.by.end()) {
        continue;  // a backend listing one URL twice counts once, at its best rank
      }
      a.hit.url = hits[r].url;
      if (r < a.best_rank) {
        a.best_rank = r;
        a.hit.title = hits[r].title;
      }
      a.hit.score += 1.0 / (kK + static_cast<double>(r + 1));
      a.by.emplace_back(r, backend);
    }
  }
  std::vector<Hit> out;
  out.reserve(acc.size());
  for (auto& [url, a] : acc) {
    std::sort(a.by.begin(), a.by.end());
    for (auto& [r, name] : a.by) a.hit.backends.push_back(name);
    out.push_back(std::move(a.hit));
  }
  std::sort(out.begin(), out.end(), [](const Hit& x, const Hit& y) {
    return x.score != y.score ? x.score > y.score : x.url < y.url;
  });
  if (top_k != 0 && out.size() > top_k) out.resize(top_k);
  return out;
}

std::string url_encode(std::string_view s) {
  std::string out;
  for (const unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace search_aggregator
