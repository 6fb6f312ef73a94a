// graceful_server's core (graceful_server.hpp): the routes, the request table, and run().
//
// The request table: every request is registered when its handler starts and removed when it
// returns. Once the shutdown has begun, a handler that returns is logged with how many remain
// (the drain's progress); once the shutdown context is done (timeout or a second signal) a
// handler that returns is recorded as cut off instead and reported by run() after the server
// has been destroyed (which waits for every handler), so the log reads in order:
// signal -> stopped accepting -> each finished -> timeout -> each cut off -> done.
#include "graceful_server.hpp"

#include <signal.h>

#include <charconv>
#include <map>
#include <mutex>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include <spindle/mutex.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

#include "common/duration.hpp"

namespace graceful_server {

namespace http = spindle::http;
namespace patterns = spindle::patterns;
using spindle::Context;
using spindle::TimePoint;
using samples::format_duration;

namespace {

struct Tracked {
  std::uint64_t id = 0;
  std::string method;
  std::string target;
  TimePoint start{};
};

std::string describe(const Tracked& t) { return fmt::format("#{} {} {}", t.id, t.method, t.target); }

std::string list(const std::vector<Tracked>& ts) {
  std::string out;
  for (const auto& t : ts) out += (out.empty() ? "" : ", ") + describe(t);
  return out;
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    default: return "signal";
  }
}

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=') {
      return pair.substr(name.size() + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

long long millis(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

}  // namespace

struct App::State {
  explicit State(Config c) : cfg(std::move(c)), clock(patterns::clock_or_system(cfg.clock)) {
    if (!cfg.log) cfg.log = [](std::string_view line) { fmt::print(stderr, "{}\n", line); };
  }

  void log(std::string_view line) const { cfg.log(line); }

  http::Response route(const http::Request& req, const Context& ctx);
  http::Response handle(const http::Request& req, const Context& ctx);

  Config cfg;
  const patterns::Clock& clock;
  spindle::net::Listener ln;
  bool bound = false;
  std::atomic<bool> draining{false};  // /healthz says 503 from the signal on

  // Held from counting a finished request to logging it, so the drain log's "N still in
  // flight" lines come in the order the count fell. A fiber mutex: the log call may park.
  spindle::Mutex finish_log_mu;
  std::mutex mu;  // guards what follows; never held across a park or a log call
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, Tracked> running;
  bool shutting_down = false;
  Context shutdown_ctx;            // once shutting_down: done at the timeout or a second signal
  int finished_after = 0;
  std::vector<std::pair<Tracked, TimePoint>> cut;  // returned after shutdown_ctx was done
};

http::Response App::State::route(const http::Request& req, const Context& ctx) {
  const std::string_view path = req.path();
  if (path == "/") return http::Response::text(200, "hello from graceful_server\n");
  if (path == "/healthz") {
    return draining.load() ? http::Response::text(503, "draining\n") : http::Response::text(200, "ok\n");
  }
  if (path == "/slow") {
    const std::string_view ms = query_param(req.query(), "ms");
    long long n = -1;
    auto [p, ec] = std::from_chars(ms.data(), ms.data() + ms.size(), n);
    if (ms.empty() || ec != std::errc() || p != ms.data() + ms.size() || n < 0 ||
        std::chrono::milliseconds(n) > cfg.max_slow) {
      return http::Response::text(400, fmt::format("/slow needs ms=N with 0 <= N <= {}\n", millis(cfg.max_slow)));
    }
    // The "work": a sleep that ends early when the request's context is cancelled (the client
    // went away, or the shutdown timed out).
    const TimePoint start = clock.now();
    if (std::error_code e = patterns::sleep_for(clock, ctx, std::chrono::milliseconds(n))) {
      return http::Response::text(503, fmt::format("interrupted after {} ms: {}\n", millis(clock.now() - start),
                                                   e.message()));
    }
    return http::Response::text(200, fmt::format("worked {} ms\n", n));
  }
  return http::Response::text(404, "not found\n");
}

http::Response App::State::handle(const http::Request& req, const Context& ctx) {
  Tracked t{0, req.method, req.target, clock.now()};
  {
    std::lock_guard lock(mu);
    t.id = ++next_id;
    running.emplace(t.id, t);
  }
  http::Response resp;
  try {
    resp = route(req, ctx);
  } catch (...) {  // the server answers 500 and logs it; the table must not keep the request
    std::lock_guard lock(mu);
    running.erase(t.id);
    throw;
  }
  const TimePoint end = clock.now();
  bool drain = false;
  std::size_t left = 0;
  std::lock_guard log_order(finish_log_mu);
  {
    std::lock_guard lock(mu);
    running.erase(t.id);
    if (shutting_down && shutdown_ctx.err()) {
      cut.emplace_back(t, end);  // reported by run() once every handler has returned
      return resp;
    }
    if (shutting_down) {
      drain = true;
      ++finished_after;
      left = running.size();
    }
  }
  const std::string gone = ctx.err() ? " (client went away)" : "";
  if (drain) {
    log(fmt::format("{} finished: {} in {} ms{}; {} still in flight", describe(t), resp.status, millis(end - t.start),
                    gone, left));
  } else {
    log(fmt::format("{} -> {} in {} ms{}", describe(t), resp.status, millis(end - t.start), gone));
  }
  return resp;
}

App::App(Config cfg) : st_(std::make_shared<State>(std::move(cfg))) {}
App::~App() = default;

std::error_code App::listen() {
  auto [ln, err] = spindle::net::listen(st_->cfg.host, st_->cfg.port);
  if (err) return err;
  st_->ln = std::move(ln);
  st_->bound = true;
  return {};
}

std::uint16_t App::port() const noexcept { return st_->bound ? st_->ln.port() : 0; }

Summary App::run(const Context& ctx) {
  State& s = *st_;
  Summary sum;
  if (!s.bound) {
    sum.serve_error = spindle::net::errc::closed;
    return sum;
  }
  // Subscribe before announcing anything: from "listening" on, SIGINT/SIGTERM are ours.
  // Capacity 2: the first signal and a second one that forces the shutdown.
  spindle::Receiver<int> sigs = spindle::signal::notify({SIGINT, SIGTERM}, 2);
  struct Unsubscribe {
    spindle::Receiver<int>& r;
    ~Unsubscribe() { spindle::signal::stop(r); }
  } unsubscribe{sigs};

  http::ServerOptions opts;
  opts.log = [st = st_](std::string_view line) { st->log(fmt::format("http: {}", line)); };
  auto server = std::make_unique<http::Server>(
      [st = st_](const http::Request& req, const Context& c) { return st->handle(req, c); }, opts);
  spindle::WaitGroup wg;
  spindle::Chan<std::error_code> served(1);
  wg.go([&server, &served, ln = s.ln] { (void)served.try_send(server->serve(ln)); });
  s.log(fmt::format("listening on http://{}:{} (shutdown timeout {}, drain delay {})", s.cfg.host, s.ln.port(),
                    format_duration(s.cfg.shutdown_timeout), format_duration(s.cfg.drain_delay)));

  // Serving, until a signal, run()'s context, or a fatal accept error.
  std::error_code serve_error;
  const std::size_t why =
      spindle::select(spindle::case_recv(sigs, [&](std::optional<int> v) { sum.signal = v.value_or(0); }),
                      spindle::case_recv(ctx.done()),
                      spindle::case_recv(served, [&](std::optional<std::error_code> e) { serve_error = e.value_or(std::error_code{}); }));
  if (why == 2) {
    s.log(fmt::format("serving failed: {}; closing", serve_error.message()));
    sum.serve_error = serve_error;
    server->close();
    wg.wait();
    server.reset();
    return sum;
  }

  // A second signal forces the shutdown at any point from here on. (Not a child of run()'s
  // context: when that context is what started the shutdown, the shutdown is still graceful.)
  auto [force_ctx, force] = spindle::with_cancel(spindle::background());
  wg.go([&sigs, &s, fctx = force_ctx, &force = force] {
    std::optional<int> again;
    if (spindle::select(spindle::case_recv(sigs, [&](std::optional<int> v) { again = v; }),
                        spindle::case_recv(fctx.done())) == 0) {
      s.log(fmt::format("received {} again: forcing shutdown", signal_name(again.value_or(0))));
      force();
    }
  });

  std::vector<Tracked> snapshot;
  {
    std::lock_guard lock(s.mu);
    for (const auto& [id, t] : s.running) snapshot.push_back(t);
  }
  s.draining.store(true);
  sum.in_flight = static_cast<int>(snapshot.size());
  s.log(fmt::format("{}: shutting down gracefully (timeout {}); {} request(s) in flight{}{}",
                    sum.signal != 0 ? fmt::format("received {}", signal_name(sum.signal)) : std::string("context done"),
                    format_duration(s.cfg.shutdown_timeout), snapshot.size(), snapshot.empty() ? "" : ": ",
                    list(snapshot)));
  if (s.cfg.drain_delay > Duration::zero()) {
    s.log(fmt::format("draining: /healthz answers 503; still accepting for {}", format_duration(s.cfg.drain_delay)));
    (void)patterns::sleep_for(s.clock, force_ctx, s.cfg.drain_delay);
  }

  // The timeout counts from here: the shutdown proper.
  patterns::ClockContext timeout = patterns::timeout_context(force_ctx, s.cfg.shutdown_timeout, s.clock);
  {
    std::lock_guard lock(s.mu);
    s.shutting_down = true;
    s.shutdown_ctx = timeout.ctx;
  }
  const TimePoint began = s.clock.now();
  const std::error_code err = server->shutdown(timeout.ctx);
  if (err) {
    std::size_t still = 0;
    {
      std::lock_guard lock(s.mu);
      still = s.running.size() + s.cut.size();
    }
    s.log(fmt::format("shutdown {} after {}: closed the remaining connections; {} request(s) cut off",
                      force_ctx.err() ? "forced" : "timed out", format_duration(s.clock.now() - began),
                      still));
  }
  server.reset();  // waits for every connection fiber, so every handler has returned
  force();         // ends the second-signal watcher
  wg.wait();

  std::vector<std::pair<Tracked, TimePoint>> cut;
  {
    std::lock_guard lock(s.mu);
    cut = s.cut;
    sum.finished = s.finished_after;
  }
  for (const auto& [t, end] : cut) {
    s.log(fmt::format("{} cut off after {} ms", describe(t), millis(end - t.start)));
  }
  sum.cut_off = static_cast<int>(cut.size());
  sum.timed_out = static_cast<bool>(err);
  s.log(fmt::format("shutdown {}: {} request(s) finished during shutdown, {} cut off",
                    err ? "ended by timeout" : "complete", sum.finished, sum.cut_off));
  return sum;
}

}  // namespace graceful_server
