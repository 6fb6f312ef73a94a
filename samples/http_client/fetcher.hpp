// http_client: a context-aware HTTP client (the seed's "Exercise 1: Context-Aware HTTP
// Client"): fetches URLs concurrently, honours cancellation, retries transient failures with
// exponential backoff and jitter, bounds each attempt and each URL with timeouts, and logs
// every line with the request ID carried in the context.
//
// One URL (Fetcher::fetch):
//  * a request ID ("<run>-<n>": six hex digits per Fetcher, then a sequence number) is bound in
//    the context under http::kRequestId; the http::Client sends it as X-Request-ID, and every
//    log line about the URL starts with "[<id>]", read back from the context;
//  * patterns::retry runs the attempts: up to 1 + retries, sleeping between them for a full
//    jitter exponential backoff (u * min(backoff_max, backoff * 2^(k-1)), u uniform in [0, 1))
//    on the configured clock. Retried: 5xx responses, connection errors (refused, reset, EOF
//    before a response) and an attempt that hit attempt_timeout. Not retried: 4xx and other
//    responses (they are answers), malformed URLs or responses, and the context being done;
//  * the http::Client does the transport (pooling, Beast's parser) with its own retries off,
//    so that every attempt is counted and logged here;
//  * `timeout` bounds the whole URL, attempts and sleeps included; cancelling the caller's
//    context stops an attempt in flight at once (its connection is closed).
// Many URLs (fetch_all): one fiber per URL, all under the same context, results in order.
// fetch_until_signal: fetch_all whose context is cancelled by SIGINT or SIGTERM (Ctrl-C).
//
// Thread-safety: a Fetcher may be used by many fibers at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/http/client.hpp>
#include <spindle/patterns/clock.hpp>

namespace http_client {

using spindle::Duration;

// Outcomes of a fetch that are not transport errors.
enum class errc : int {
  server_error = 1,     // the last attempt got a 5xx (FetchResult::status has it)
  attempt_timeout = 2,  // the last attempt took longer than attempt_timeout
};
[[nodiscard]] const std::error_category& error_category() noexcept;
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Whether an attempt that failed with `ec` is worth another try (see the file comment).
[[nodiscard]] bool retryable(std::error_code ec) noexcept;

struct Config {
  Duration timeout = std::chrono::seconds(30);          // per URL, all attempts; 0: none
  Duration attempt_timeout = std::chrono::seconds(10);  // per attempt; 0: none
  int retries = 3;                                      // extra attempts after the first
  Duration backoff = std::chrono::milliseconds(100);    // the first retry's base delay
  Duration backoff_max = std::chrono::seconds(5);
  const spindle::patterns::Clock* clock = nullptr;      // backoff sleeps, elapsed times; null: system
  std::function<double()> random;                       // jitter draw in [0, 1); null: random
  std::function<void(std::string_view)> log;            // one line per call; null: stderr
};

struct FetchResult {
  std::string url;
  std::string request_id;
  int attempts = 0;
  int status = 0;         // the last response's status; 0 if none arrived
  std::string body;       // the last response's body
  std::error_code err;    // empty: a response that was not retried (2xx-4xx); else why it failed
  Duration elapsed{};
  [[nodiscard]] bool ok() const noexcept { return !err && status >= 200 && status < 400; }
};

class Fetcher {
 public:
  explicit Fetcher(Config cfg);
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Fetches one URL (see the file comment). Parks the calling fiber.
  FetchResult fetch(const spindle::Context& ctx, std::string_view url);
  // Fetches every URL concurrently; results in the order of `urls`.
  std::vector<FetchResult> fetch_all(const spindle::Context& ctx, const std::vector<std::string>& urls);

  // Logs `line` prefixed with the request ID bound in ctx (if any).
  void log(const spindle::Context& ctx, std::string_view line) const;

 private:
  [[nodiscard]] std::string next_request_id();
  FetchResult fetch_as(const spindle::Context& ctx, std::string_view url, std::string request_id);

  Config cfg_;
  const spindle::patterns::Clock& clock_;
  spindle::http::Client client_;
  std::string run_id_;
  std::atomic<std::uint64_t> seq_{0};
};

// fetch_all under a context that SIGINT or SIGTERM cancels. Subscribes to the signals before
// the first request and unsubscribes before returning; `interrupted` tells whether one came.
std::vector<FetchResult> fetch_until_signal(Fetcher& f, const spindle::Context& ctx,
                                            const std::vector<std::string>& urls, bool& interrupted);

}  // namespace http_client

template <>
struct std::is_error_code_enum<http_client::errc> : std::true_type {};
