// The HTTP/1.1 client (spindle/http/client.hpp): URL split, keep-alive pool, one attempt over
// Beast's serializer and response parser, retries with backoff and jitter.
//
// Invariants:
//  * A pooled connection was fully read (its response complete, nothing buffered beyond it) and
//    both sides wanted it kept alive; it is checked again (age, and a non-blocking peek for EOF
//    or unexpected bytes) when taken. The pool lock (a std::mutex) is never held across a park
//    or a system call.
//  * Only the call's own context (the caller's, narrowed by ClientOptions::timeout) ends a call
//    early; an attempt's own timeout ends only that attempt, which may then be retried.
#include <spindle/http/client.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <limits>
#include <mutex>
#include <optional>
#include <unordered_map>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <spindle/this_fiber.hpp>

#include "http/stream.hpp"
#include "net/fd.hpp"

namespace spindle::http {

namespace bhttp = boost::beast::http;

namespace {

std::string to_std(boost::beast::string_view sv) { return std::string(sv.data(), sv.size()); }

struct Url {
  std::string host;
  std::uint16_t port = 80;
  std::string target = "/";
};

bool iprefix(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && Headers::name_equals(s.substr(0, p.size()), p);
}

// Splits "http://host[:port][/path][?query][#fragment]" (the fragment is dropped).
std::error_code parse_url(std::string_view url, Url& out) {
  if (!iprefix(url, "http://")) {
    return url.find("://") != std::string_view::npos ? errc::unsupported_scheme : errc::bad_url;
  }
  std::string_view rest = url.substr(7);
  const std::size_t end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  std::string_view target = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (const auto hash = target.find('#'); hash != std::string_view::npos) target = target.substr(0, hash);
  if (authority.empty() || authority.find('@') != std::string_view::npos) return errc::bad_url;
  std::string_view host = authority, port;
  if (authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return errc::bad_url;
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return errc::bad_url;
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) return errc::bad_url;
  out.host = std::string(host);
  out.port = 80;
  if (!port.empty()) {
    unsigned v = 0;
    const auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) return errc::bad_url;
    out.port = static_cast<std::uint16_t>(v);
  }
  if (target.empty()) {
    out.target = "/";
  } else if (target.front() == '?') {
    out.target = "/" + std::string(target);
  } else {
    out.target = std::string(target);
  }
  return {};
}

bool idempotent(const Request& req) {
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
  for (std::string_view m : kMethods) {
    if (req.method == m) return true;
  }
  return req.headers.has("Idempotency-Key") || req.headers.has("X-Idempotency-Key");
}

struct Attempt {
  net::Result<Response> result;
  bool retryable = false;  // a transport failure worth another attempt (idempotent requests)
  bool stale = false;      // failed on a reused connection before any response byte
};

}  // namespace

struct Client::Impl {
  explicit Impl(ClientOptions o)
      : opts(std::move(o)), rng(static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()) | 1) {}

  ClientOptions opts;
  struct Idle {
    net::Conn conn;
    TimePoint since;
  };
  std::mutex mu;
  std::unordered_map<std::string, std::vector<Idle>> idle;
  std::atomic<std::int64_t> dials{0}, reused{0}, retries{0}, idle_count{0};
  std::atomic<std::uint64_t> rng;

  std::uint64_t random() noexcept {  // splitmix64 over an atomic counter: thread-safe, no TLS
    std::uint64_t z = rng.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  net::Conn take(const std::string& key) {
    for (;;) {
      Idle got;
      {
        std::lock_guard lock(mu);
        auto it = idle.find(key);
        if (it == idle.end() || it->second.empty()) return {};
        got = std::move(it->second.back());
        it->second.pop_back();
        idle_count.fetch_sub(1, std::memory_order_relaxed);
      }
      net::detail::NetFd* fd = net::detail::fd_of(got.conn);
      const bool fresh = opts.idle_timeout <= Duration::zero() || Clock::now() - got.since < opts.idle_timeout;
      if (fd != nullptr && fresh && fd->alive()) return got.conn;
      (void)got.conn.close();
    }
  }

  void put(const std::string& key, net::Conn c) {
    {
      std::lock_guard lock(mu);
      auto& v = idle[key];
      if (v.size() < opts.max_idle_per_host) {
        v.push_back(Idle{std::move(c), Clock::now()});
        idle_count.fetch_add(1, std::memory_order_relaxed);
        return;
      }
    }
    (void)c.close();
  }

  Attempt attempt(const Context& ctx, const std::string& host, std::uint16_t port, const std::string& key,
                  bhttp::request<bhttp::string_body>& m, bool head);
  net::Result<Response> call(const Context& ctx, const std::string& host, std::uint16_t port, Request req);
};

Attempt Client::Impl::attempt(const Context& ctx, const std::string& host, std::uint16_t port,
                              const std::string& key, bhttp::request<bhttp::string_body>& m, bool head) {
  Attempt a;
  net::Conn conn = take(key);
  const bool was_pooled = static_cast<bool>(conn);
  if (was_pooled) {
    reused.fetch_add(1, std::memory_order_relaxed);
  } else {
    auto [c, err] = net::dial(ctx, host, port);
    if (err) {
      a.result.err = err;
      a.retryable = true;
      return a;
    }
    dials.fetch_add(1, std::memory_order_relaxed);
    conn = std::move(c);
  }
  net::detail::NetFd& fd = *net::detail::fd_of(conn);
  detail::FiberStream stream(fd, &ctx);
  boost::beast::error_code ec;
  bhttp::write(stream, m, ec);
  if (ec) {
    (void)conn.close();
    const std::error_code se = stream.last_error();
    a.result.err = se ? se : std::error_code(ec);
    a.retryable = true;
    a.stale = was_pooled && (se == std::errc::connection_reset || se == std::errc::broken_pipe);
    return a;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<std::uint32_t>(
      std::min<std::size_t>(opts.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
  parser.body_limit(opts.max_body_bytes > 0 ? static_cast<std::uint64_t>(opts.max_body_bytes)
                                            : std::numeric_limits<std::uint64_t>::max());
  if (head) parser.skip(true);
  boost::beast::flat_buffer buf;
  bhttp::read(stream, buf, parser, ec);
  if (ec) {
    (void)conn.close();
    const bool nothing = !parser.got_some() && buf.size() == 0;
    if (const std::error_code se = stream.last_error(); se && se != net::errc::eof) {
      a.result.err = se;
      a.retryable = true;
      a.stale = was_pooled && nothing &&
                (se == std::errc::connection_reset || se == std::errc::broken_pipe);
    } else if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) {
      a.result.err = nothing ? net::errc::eof : net::errc::unexpected_eof;
      a.retryable = true;
      a.stale = was_pooled && nothing;
    } else if (ec == bhttp::error::header_limit || ec == bhttp::error::body_limit ||
               ec == bhttp::error::buffer_overflow) {
      a.result.err = errc::response_too_large;
    } else {
      a.result.err = errc::bad_response;
    }
    return a;
  }
  auto& res = parser.get();
  Response& out = a.result.value;
  out.status = static_cast<int>(res.result_int());
  for (const auto& f : res) out.headers.add(to_std(f.name_string()), to_std(f.value()));
  out.body = std::move(res.body());
  if (res.keep_alive() && m.keep_alive() && !res.need_eof() && buf.size() == 0) {
    put(key, std::move(conn));
  } else {
    (void)conn.close();
  }
  return a;
}

net::Result<Response> Client::Impl::call(const Context& ctx, const std::string& host, std::uint16_t port,
                                         Request req) {
  std::optional<CancelableContext> bounded;
  if (opts.timeout > Duration::zero()) bounded.emplace(with_timeout(ctx, opts.timeout));
  const Context& c = bounded ? bounded->ctx : ctx;
  if (std::error_code e = c.err()) return {{}, e};

  bhttp::request<bhttp::string_body> m;
  m.method_string(req.method);
  m.target(req.target.empty() ? std::string("/") : req.target);
  m.version(11);
  bool close_after = false;
  for (const auto& [name, value] : req.headers) {
    if (Headers::name_equals(name, "Content-Length") || Headers::name_equals(name, "Transfer-Encoding")) continue;
    if (Headers::name_equals(name, "Connection")) {
      close_after = boost::beast::iequals(value, "close");
      continue;
    }
    m.insert(name, value);
  }
  if (!req.headers.has("Host")) {
    const bool v6 = host.find(':') != std::string::npos;
    const std::string h = v6 ? "[" + host + "]" : host;
    m.set(bhttp::field::host, port == 80 ? h : fmt::format("{}:{}", h, port));
  }
  if (!req.headers.has("User-Agent") && !opts.user_agent.empty()) m.set(bhttp::field::user_agent, opts.user_agent);
  if (!req.headers.has("X-Request-ID")) {
    if (const std::string* id = c.value(kRequestId)) m.set("X-Request-ID", *id);
  }
  m.body() = std::move(req.body);
  m.keep_alive(!close_after);
  m.prepare_payload();
  const bool head = m.method() == bhttp::verb::head;
  const std::string key = fmt::format("{}:{}", host, port);

  const bool may_retry = idempotent(req);
  const int attempts = may_retry ? 1 + std::max(0, opts.max_retries) : 1;
  bool stale_retried = false;
  net::Result<Response> last;
  for (int k = 0; k < attempts;) {
    Attempt a;
    {
      std::optional<CancelableContext> per;
      if (opts.attempt_timeout > Duration::zero()) per.emplace(with_timeout(c, opts.attempt_timeout));
      a = attempt(per ? per->ctx : c, host, port, key, m, head);
    }
    if (std::error_code e = c.err()) return {{}, e};  // the call itself is over
    const bool retry_status =
        !a.result.err && std::find(opts.retry_statuses.begin(), opts.retry_statuses.end(), a.result.value.status) !=
                             opts.retry_statuses.end();
    if (!a.result.err && !retry_status) return a.result;
    last = std::move(a.result);
    if (!may_retry) return last;
    if (a.stale && !stale_retried) {  // the server dropped an idle connection: once, at once
      stale_retried = true;
      continue;
    }
    if (last.err && !a.retryable) return last;
    if (++k >= attempts) break;
    // Exponential backoff with equal jitter: half the step fixed, half random.
    retries.fetch_add(1, std::memory_order_relaxed);
    Duration step = opts.backoff_base;
    for (int i = 1; i < k && step < opts.backoff_max; ++i) step *= 2;
    step = std::min(step, opts.backoff_max);
    const auto half = step / 2;
    const auto spread = static_cast<std::uint64_t>(std::max<Duration::rep>(half.count(), 1));
    const Duration delay = half + Duration(static_cast<Duration::rep>(random() % spread));
    if (std::error_code e = this_fiber::sleep_for(c, delay)) return {{}, e};
  }
  return last;
}

Client::Client(ClientOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
Client::~Client() { close_idle_connections(); }

net::Result<Response> Client::get(const Context& ctx, std::string_view url) { return request(ctx, url, Request{}); }

net::Result<Response> Client::request(const Context& ctx, std::string_view url, Request req) {
  Url u;
  if (std::error_code ec = parse_url(url, u)) return {{}, ec};
  req.target = std::move(u.target);
  return impl_->call(ctx, u.host, u.port, std::move(req));
}

net::Result<Response> Client::request(const Context& ctx, std::string_view host, std::uint16_t port, Request req) {
  return impl_->call(ctx, std::string(host), port, std::move(req));
}

void Client::close_idle_connections() {
  std::unordered_map<std::string, std::vector<Impl::Idle>> all;
  {
    std::lock_guard lock(impl_->mu);
    all.swap(impl_->idle);
    impl_->idle_count.store(0, std::memory_order_relaxed);
  }
  for (auto& [key, v] : all) {
    for (auto& i : v) (void)i.conn.close();
  }
}

ClientStats Client::stats() const noexcept {
  ClientStats s;
  s.dials = impl_->dials.load(std::memory_order_relaxed);
  s.reused = impl_->reused.load(std::memory_order_relaxed);
  s.retries = impl_->retries.load(std::memory_order_relaxed);
  s.idle = impl_->idle_count.load(std::memory_order_relaxed);
  return s;
}

}  // namespace spindle::http
