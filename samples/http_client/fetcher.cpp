// http_client's core (fetcher.hpp): one URL through patterns::retry over http::Client, many
// URLs in fibers, and the signal that cancels them.
#include "fetcher.hpp"

#include <signal.h>

#include <optional>
#include <random>
#include <utility>

#include <fmt/format.h>

#include <spindle/errors.hpp>
#include <spindle/http/message.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/patterns/retry.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

namespace http_client {

namespace http = spindle::http;
namespace patterns = spindle::patterns;
using spindle::Context;

namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "http_client"; }
  std::string message(int c) const override {
    switch (static_cast<errc>(c)) {
      case errc::server_error: return "server error";
      case errc::attempt_timeout: return "attempt timed out";
    }
    return "unknown http_client error";
  }
};

long long millis(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string status_line(int status) {
  const std::string_view text = http::status_text(status);
  return text.empty() ? fmt::format("{}", status) : fmt::format("{} {}", status, text);
}

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category c;
  return c;
}

bool retryable(std::error_code ec) noexcept {
  // The context's own outcomes first: deadline_exceeded is equivalent to std::errc::timed_out
  // (below), but a URL whose time is up must not be tried again.
  if (ec == spindle::errc::canceled || ec == spindle::errc::deadline_exceeded) return false;
  if (ec == errc::server_error || ec == errc::attempt_timeout) return true;
  if (ec == spindle::net::errc::eof || ec == spindle::net::errc::unexpected_eof ||
      ec == spindle::net::errc::timeout) {
    return true;
  }
  return ec == std::errc::connection_refused || ec == std::errc::connection_reset ||
         ec == std::errc::connection_aborted || ec == std::errc::broken_pipe ||
         ec == std::errc::host_unreachable || ec == std::errc::network_unreachable ||
         ec == std::errc::timed_out;
}

namespace {

http::ClientOptions transport_options() {
  http::ClientOptions o;
  o.max_retries = 0;  // the retries are ours (patterns::retry), each one counted and logged
  return o;
}

}  // namespace

Fetcher::Fetcher(Config cfg)
    : cfg_(std::move(cfg)), clock_(patterns::clock_or_system(cfg_.clock)), client_(transport_options()) {
  if (!cfg_.log) cfg_.log = [](std::string_view line) { fmt::print(stderr, "{}\n", line); };
  std::random_device rd;
  run_id_ = fmt::format("{:06x}", rd() & 0xffffff);
}

void Fetcher::log(const Context& ctx, std::string_view line) const {
  if (const std::string* id = ctx.value(http::kRequestId)) {
    cfg_.log(fmt::format("[{}] {}", *id, line));
  } else {
    cfg_.log(line);
  }
}

std::string Fetcher::next_request_id() {
  return fmt::format("{}-{:04}", run_id_, seq_.fetch_add(1, std::memory_order_relaxed) + 1);
}

FetchResult Fetcher::fetch(const Context& ctx, std::string_view url) { return fetch_as(ctx, url, next_request_id()); }

FetchResult Fetcher::fetch_as(const Context& parent, std::string_view url, std::string request_id) {
  FetchResult res;
  res.url = std::string(url);
  res.request_id = std::move(request_id);
  const Context with_id = spindle::with_value(parent, http::kRequestId, res.request_id);
  std::optional<spindle::CancelableContext> bounded;
  if (cfg_.timeout > Duration::zero()) bounded.emplace(spindle::with_timeout(with_id, cfg_.timeout));
  const Context& ctx = bounded ? bounded->ctx : with_id;
  const spindle::TimePoint start = clock_.now();
  const int max_attempts = 1 + std::max(0, cfg_.retries);

  patterns::RetrySettings rs;
  rs.max_attempts = max_attempts;
  // (Zero means "the default" to patterns::Backoff; here --backoff 0 means no waiting.)
  rs.backoff.initial = std::max(cfg_.backoff, Duration(1));
  rs.backoff.max = std::max(cfg_.backoff_max, rs.backoff.initial);
  rs.backoff.multiplier = 2;
  rs.backoff.full_jitter = true;
  rs.retryable = [](std::error_code ec) { return retryable(ec); };
  rs.on_retry = [&](int attempt, std::error_code ec, Duration delay) {
    const std::string what = ec == errc::server_error ? status_line(res.status) : ec.message();
    log(ctx, fmt::format("attempt {}/{} failed: {}; retrying in {} ms", attempt, max_attempts, what, millis(delay)));
  };
  rs.random = cfg_.random;
  rs.clock = cfg_.clock;

  auto attempt = [&](const Context& c) -> patterns::Result<http::Response> {
    ++res.attempts;
    std::optional<spindle::CancelableContext> per;
    if (cfg_.attempt_timeout > Duration::zero()) per.emplace(spindle::with_timeout(c, cfg_.attempt_timeout));
    log(c, fmt::format("attempt {}/{}: GET {}", res.attempts, max_attempts, url));
    spindle::net::Result<http::Response> r = client_.get(per ? per->ctx : c, url);
    if (r.err) {
      // The attempt's own deadline, as opposed to the URL's timeout or a cancel from above.
      if (per && !c.err() && (r.err == spindle::errc::deadline_exceeded || r.err == spindle::errc::canceled)) {
        return make_error_code(errc::attempt_timeout);
      }
      return r.err;
    }
    res.status = r.value.status;
    res.body = r.value.body;
    if (r.value.status >= 500) return make_error_code(errc::server_error);
    return std::move(r.value);
  };

  patterns::Result<http::Response> out = patterns::retry(ctx, rs, attempt);
  res.elapsed = clock_.now() - start;
  if (out) {
    log(ctx, fmt::format("{} in {} ms after {} attempt(s), {} bytes{}", status_line(out->status), millis(res.elapsed),
                         res.attempts, out->body.size(), out->status >= 400 ? " (a client error: not retried)" : ""));
    return res;
  }
  res.err = out.error();
  const std::string what = res.err == errc::server_error ? status_line(res.status) : res.err.message();
  if (ctx.err()) {
    log(ctx, fmt::format("stopped after {} attempt(s) and {} ms: {}", res.attempts, millis(res.elapsed),
                         parent.err() ? "cancelled" : "timeout exceeded"));
  } else if (retryable(res.err)) {
    log(ctx, fmt::format("giving up after {} attempt(s) and {} ms: {}", res.attempts, millis(res.elapsed), what));
  } else {
    log(ctx, fmt::format("failed: {} (not retried)", what));
  }
  return res;
}

std::vector<FetchResult> Fetcher::fetch_all(const Context& ctx, const std::vector<std::string>& urls) {
  std::vector<FetchResult> results(urls.size());
  spindle::WaitGroup wg;
  for (std::size_t i = 0; i < urls.size(); ++i) {
    // IDs in the order of the URLs, whatever order the fibers run in.
    wg.go(spindle::SpawnOptions{.name = "http_client.fetch"}, [this, &ctx, &urls, &results, i, id = next_request_id()] {
      results[i] = fetch_as(ctx, urls[i], id);
    });
  }
  wg.wait();
  return results;
}

std::vector<FetchResult> fetch_until_signal(Fetcher& f, const Context& parent, const std::vector<std::string>& urls,
                                            bool& interrupted) {
  spindle::Receiver<int> sigs = spindle::signal::notify({SIGINT, SIGTERM});
  auto [ctx, cancel] = spindle::with_cancel(parent);
  interrupted = false;
  spindle::WaitGroup watcher;
  watcher.go(spindle::SpawnOptions{.name = "http_client.signal"}, [&f, &sigs, &interrupted, c = ctx, &cancel = cancel] {
    std::optional<int> sig;
    if (spindle::select(spindle::case_recv(sigs, [&](std::optional<int> v) { sig = v; }),
                        spindle::case_recv(c.done())) == 0) {
      interrupted = true;
      f.log(c, fmt::format("received {}: cancelling every request", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
      cancel();
    }
  });
  std::vector<FetchResult> results = f.fetch_all(ctx, urls);
  cancel();  // ends the watcher if no signal came
  watcher.wait();
  spindle::signal::stop(sigs);
  return results;
}

}  // namespace http_client
