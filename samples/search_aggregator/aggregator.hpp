// search_aggregator: fans one query out to several search backends over HTTP with bounded
// concurrency, keeps what arrived by the deadline, cancels the stragglers, merges and ranks
// the hits, and reports what each backend did.
//
//   Aggregator agg({{"alpha", "http://127.0.0.1:8001/search"}, ...},
//                  {.deadline = 150ms, .max_concurrency = 4});
//   SearchResult r = agg.search(ctx, "fibers");
//
// How (one search):
//  * A deadline context: patterns::timeout_context(ctx, deadline, clock): with_timeout on the
//    system clock, an injected clock's timer in tests.
//  * patterns::map_bounded over the backends with limit max_concurrency: at most that many
//    requests are in flight, and only that many fibers exist; the next backend starts when one
//    finishes. Each call records its own report slot, so the result never depends on whether
//    map_bounded could start everything: a backend that never got a slot before the deadline is
//    `skipped` and is not asked at all.
//  * Each call is http::Client::get(ctx) with no retries (a retry cannot beat a deadline); when
//    the deadline passes, the call's context is cancelled, the client closes the connection, and
//    the backend sees its client go away (its request context is cancelled). search() returns
//    once every started call has returned, which cancelled calls do at once.
//  * An answer counts if its response was complete, 200, well-formed JSON, and the deadline had
//    not passed when it was parsed; otherwise it is timed_out (the deadline passed), canceled
//    (the caller's ctx), or failed (transport error, status, bad body).
//  * Merging: reciprocal rank fusion (Cormack et al., SIGIR 2009): a hit at rank r (1-based) in
//    a backend's list scores 1 / (60 + r); scores of the same URL add up across backends. Ties
//    break by URL so the ranking is deterministic.
//
// Backend protocol: GET <url>?q=<query> (or &q= if the URL has a query) answering
// {"results": [{"title": "...", "url": "...", "score": 1.0}, ...]} in rank order (score is
// informational; fusion uses ranks).
//
// Thread-safety: search() may be called concurrently from several fibers (the client is
// shared; each search has its own state).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <spindle/clock.hpp>
#include <spindle/context.hpp>
#include <spindle/patterns/clock.hpp>

namespace search_aggregator {

using spindle::Duration;

struct Backend {
  std::string name;
  std::string url;  // http://host:port/path
};

struct Hit {
  std::string title;
  std::string url;
  double score = 0;                   // fused score (sum of 1 / (60 + rank))
  std::vector<std::string> backends{};  // who returned it, best rank first
};

enum class Outcome { answered, failed, timed_out, canceled, skipped };
[[nodiscard]] std::string_view to_string(Outcome o) noexcept;

struct BackendReport {
  std::string name;
  Outcome outcome = Outcome::skipped;
  int status = 0;          // HTTP status when a response arrived
  std::size_t hits = 0;    // answered: hits returned
  Duration took{};         // from the request's start to its end (zero if skipped)
  std::string detail;      // why it failed ("HTTP 500", "bad JSON: ...", an error message)
};

struct SearchResult {
  std::vector<Hit> hits;                 // merged, best first, at most Options::top_k
  std::vector<BackendReport> backends;   // in the order the backends were given
  Duration took{};
  int max_in_flight = 0;                 // the most requests that were in flight at once
  [[nodiscard]] std::size_t count(Outcome o) const;
};

struct Options {
  Duration deadline = std::chrono::milliseconds(200);  // zero: only the caller's ctx
  int max_concurrency = 4;                             // requests in flight at once (> 0)
  std::size_t top_k = 10;                              // hits kept after merging (0: all)
  const spindle::patterns::Clock* clock = nullptr;     // the deadline's clock; null: system
  // Called as each backend's call ends (from its fiber, possibly concurrently).
  std::function<void(const BackendReport&)> on_report{};
};

class Aggregator {
 public:
  // Throws std::invalid_argument for max_concurrency <= 0, a negative deadline, no backends.
  Aggregator(std::vector<Backend> backends, Options opts);
  ~Aggregator();
  Aggregator(const Aggregator&) = delete;
  Aggregator& operator=(const Aggregator&) = delete;

  // One fan-out (see the file comment). Parks the calling fiber until every started request has
  // returned; never throws for a backend's failure.
  [[nodiscard]] SearchResult search(const spindle::Context& ctx, std::string_view query);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// Parses a backend's body into hits in rank order; false (and `error`) for a malformed body.
[[nodiscard]] bool parse_hits(std::string_view body, std::vector<Hit>& out, std::string& error);
// Reciprocal rank fusion of several ranked lists (one per backend name), best first.
[[nodiscard]] std::vector<Hit> fuse(const std::vector<std::pair<std::string, std::vector<Hit>>>& lists,
                                    std::size_t top_k);
// application/x-www-form-urlencoded value (RFC 3986 unreserved kept, space as %20).
[[nodiscard]] std::string url_encode(std::string_view s);

}  // namespace search_aggregator
