// The HTTP/1.1 server (spindle/http/server.hpp): accept loop, one fiber per connection,
// Beast's request parser and response serializer over FiberStream, graceful shutdown.
//
// Invariants (all state below under Impl::mu, a std::mutex never held across a park):
//  * A connection is in `conns` from its registration until its fiber is about to exit; it is
//    idle (waiting for a request's first bytes), active (from those bytes until its response is
//    written) or closed. Only idle connections are closed by a graceful shutdown; a connection
//    whose first bytes arrived just as shutdown closed it sees `closed` when it tries to become
//    active, and drops the request (the client sees the connection close, as with Go).
//  * Once shutting_down is set, no connection is registered and none stays alive after its
//    current response, so conns_wg only goes down: shutdown() can wait on it.
//  * Every connection fiber is counted in conns_wg and every serve() in serve_wg; the destructor
//    waits for both, so no fiber outlives the Server.
#include <spindle/http/server.hpp>

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <list>
#include <mutex>
#include <string>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>

#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "http/stream.hpp"
#include "net/fd.hpp"

namespace spindle::http {

namespace bhttp = boost::beast::http;
using net::detail::NetFd;
using net::detail::PollMode;

namespace {

using namespace std::chrono_literals;

std::string to_std(boost::beast::string_view sv) { return std::string(sv.data(), sv.size()); }

// RFC 9110 IMF-fixdate, formatted at most once a second per thread. Not inlined, and nothing
// parks between reading the thread-locals and returning (SEMANTICS.md).
[[gnu::noinline]] std::string http_date() {
  thread_local time_t last = 0;
  thread_local char buf[40] = {};
  const time_t now = ::time(nullptr);
  if (now != last) {
    tm t{};
    ::gmtime_r(&now, &t);
    ::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &t);
    last = now;
  }
  return buf;
}

TimePoint after(Duration d) { return d > Duration::zero() ? deadline_after(d) : kNoDeadline; }

bool temporary_accept_error(std::error_code ec) {
  if (ec.category() != std::system_category()) return false;
  switch (ec.value()) {
    case EMFILE: case ENFILE: case ENOBUFS: case ENOMEM: case EPROTO: case EPERM: case EINTR:
      return true;
    default:
      return false;
  }
}

struct ConnState {
  enum class State { idle, active, closed };
  net::Conn conn;
  State state = State::idle;
  std::string remote;
};

}  // namespace

struct Server::Impl {
  Impl(Handler h, ServerOptions o) : handler(std::move(h)), opts(std::move(o)) {
    if (!opts.log) opts.log = [](std::string_view msg) { fmt::print(stderr, "http: {}\n", msg); };
    auto [ctx, cancel] = with_cancel(background());
    base = std::move(ctx);
    base_cancel = std::move(cancel);
  }

  Handler handler;
  ServerOptions opts;
  Context base;          // parent of every request context; cancelled by a force close
  CancelFunc base_cancel;

  std::mutex mu;
  bool shutting_down = false;
  std::vector<net::Listener> listeners;
  std::list<std::shared_ptr<ConnState>> conns;
  WaitGroup conns_wg;
  WaitGroup serve_wg;

  std::atomic<std::int64_t> accepted{0}, open{0}, requests{0}, in_flight{0};

  void log(std::string_view msg) const { opts.log(msg); }

  void start_conn(net::Conn c);
  void serve_conn(const std::shared_ptr<ConnState>& cs);
  bool become_active(ConnState& cs);
  bool become_idle(ConnState& cs);
  void finish_conn(const std::shared_ptr<ConnState>& cs);
  std::size_t force_close();
};

// ---------------------------------------------------------------------------------------------
// Accepting

Server::Server(Handler handler, ServerOptions opts)
    : impl_(std::make_shared<Impl>(std::move(handler), std::move(opts))) {}

Server::~Server() {
  close();
  impl_->conns_wg.wait();
  impl_->serve_wg.wait();
}

std::error_code Server::listen_and_serve(std::string_view host, std::uint16_t port) {
  auto [ln, err] = net::listen(host, port);
  if (err) return err;
  return serve(std::move(ln));
}

std::error_code Server::serve(net::Listener ln) {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mu);
    if (s.shutting_down) {
      (void)ln.close();
      return errc::server_closed;
    }
    s.listeners.push_back(ln);
    s.serve_wg.add(1);
  }
  struct Leave {
    WaitGroup& wg;
    ~Leave() { wg.done(); }
  } leave{s.serve_wg};
  Duration backoff{};
  for (;;) {
    auto [conn, err] = ln.accept();
    if (err) {
      {
        std::lock_guard lock(s.mu);
        if (s.shutting_down) return errc::server_closed;
      }
      if (!temporary_accept_error(err)) return err;
      backoff = backoff == Duration::zero() ? Duration(5ms) : std::min<Duration>(2 * backoff, 1s);
      s.log(fmt::format("accept error: {}; retrying in {} ms", err.message(),
                        std::chrono::duration_cast<std::chrono::milliseconds>(backoff).count()));
      this_fiber::sleep_for(backoff);
      continue;
    }
    backoff = {};
    s.start_conn(std::move(conn));
  }
}

void Server::Impl::start_conn(net::Conn c) {
  auto cs = std::make_shared<ConnState>();
  cs->remote = c.remote_address();
  cs->conn = std::move(c);
  std::lock_guard lock(mu);
  if (shutting_down) {
    (void)cs->conn.close();
    return;
  }
  conns.push_back(cs);
  accepted.fetch_add(1, std::memory_order_relaxed);
  open.fetch_add(1, std::memory_order_relaxed);
  // Spawning never parks, so it may happen under mu: registration and the count are atomic
  // with respect to shutdown's check of shutting_down.
  conns_wg.go(SpawnOptions{.name = "http.conn"}, [this, cs] {
    serve_conn(cs);
    finish_conn(cs);
  });
}

bool Server::Impl::become_active(ConnState& cs) {
  std::lock_guard lock(mu);
  if (cs.state == ConnState::State::closed) return false;
  cs.state = ConnState::State::active;
  in_flight.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool Server::Impl::become_idle(ConnState& cs) {
  std::lock_guard lock(mu);
  if (cs.state == ConnState::State::active) in_flight.fetch_sub(1, std::memory_order_relaxed);
  if (shutting_down || cs.state == ConnState::State::closed) {
    cs.state = ConnState::State::closed;
    return false;
  }
  cs.state = ConnState::State::idle;
  return true;
}

void Server::Impl::finish_conn(const std::shared_ptr<ConnState>& cs) {
  {
    std::lock_guard lock(mu);
    if (cs->state == ConnState::State::active) in_flight.fetch_sub(1, std::memory_order_relaxed);
    cs->state = ConnState::State::closed;
    conns.remove(cs);
    open.fetch_sub(1, std::memory_order_relaxed);
  }
  (void)cs->conn.close();
}

// ---------------------------------------------------------------------------------------------
// One connection

namespace {

// Writes `res` with Beast's serializer; false if the connection failed.
template <class Body>
bool write_message(detail::FiberStream& stream, NetFd& fd, bhttp::response<Body>& res, Duration write_timeout) {
  fd.set_deadline(PollMode::write, after(write_timeout));
  boost::beast::error_code ec;
  bhttp::write(stream, res, ec);
  return !ec;
}

// A short error response, then the caller closes the connection.
void reply_error(detail::FiberStream& stream, NetFd& fd, int status, Duration write_timeout) {
  bhttp::response<bhttp::string_body> res;
  res.version(11);
  res.result(static_cast<unsigned>(status));
  res.set(bhttp::field::date, http_date());
  res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  res.body() = fmt::format("{} {}\n", status, status_text(status));
  res.keep_alive(false);
  res.prepare_payload();
  (void)write_message(stream, fd, res, write_timeout);
}

// What to answer when reading a request failed: 0 means close without a response.
int status_for(const boost::beast::error_code& ec, std::error_code socket_error) {
  if (socket_error) return socket_error == net::errc::timeout ? 408 : 0;
  if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) return 431;
  if (ec == bhttp::error::body_limit) return 413;
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message) return 0;
  return 400;
}

Request to_request(bhttp::request<bhttp::string_body>& m) {
  Request r;
  r.method = to_std(m.method_string());
  r.target = to_std(m.target());
  r.version = static_cast<int>(m.version());
  for (const auto& f : m) r.headers.add(to_std(f.name_string()), to_std(f.value()));
  r.body = std::move(m.body());
  return r;
}

}  // namespace

void Server::Impl::serve_conn(const std::shared_ptr<ConnState>& cs) {
  NetFd* fdp = net::detail::fd_of(cs->conn);
  if (fdp == nullptr) return;
  NetFd& fd = *fdp;
  detail::FiberStream stream(fd);
  boost::beast::flat_buffer buf;
  // Request contexts derive from a per-connection context (as Go's do), so registering and
  // releasing one touches only this connection's node, not the server-wide base every
  // connection shares; a force close still reaches them all through base.
  auto [conn_ctx, conn_cancel] = with_cancel(base);
  bool first = true;
  for (;;) {
    // Idle: wait for the first bytes of the next request.
    if (buf.size() == 0) {
      const Duration wait = first ? (opts.read_header_timeout > Duration::zero() ? opts.read_header_timeout
                                                                                  : opts.read_timeout)
                                  : (opts.idle_timeout > Duration::zero() ? opts.idle_timeout : opts.read_timeout);
      fd.set_deadline(PollMode::read, after(wait));
      auto space = buf.prepare(4096);
      const net::IoResult r = fd.read(static_cast<char*>(space.data()), space.size(), false, nullptr,
                                      std::source_location::current());
      if (r.err) return;  // idle timeout, EOF, reset or closed: just close (Go does the same)
      buf.commit(r.n);
    }
    first = false;
    if (!become_active(*cs)) return;

    // Read the request: header within read_header_timeout, all of it within read_timeout.
    const TimePoint started = Clock::now();
    const TimePoint all_by = opts.read_timeout > Duration::zero() ? started + opts.read_timeout : kNoDeadline;
    const TimePoint header_by =
        opts.read_header_timeout > Duration::zero() ? std::min(all_by, started + opts.read_header_timeout) : all_by;
    fd.set_deadline(PollMode::read, header_by);
    stream.clear_error();
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(
        std::min<std::size_t>(opts.max_header_bytes, std::numeric_limits<std::uint32_t>::max())));
    parser.body_limit(opts.max_body_bytes > 0 ? static_cast<std::uint64_t>(opts.max_body_bytes)
                                              : std::numeric_limits<std::uint64_t>::max());
    boost::beast::error_code ec;
    bhttp::read_header(stream, buf, parser, ec);
    if (!ec && !parser.is_done()) {
      if (boost::beast::iequals(parser.get()[bhttp::field::expect], "100-continue")) {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
        if (!write_message(stream, fd, cont, opts.write_timeout)) return;
      }
      fd.set_deadline(PollMode::read, all_by);
      bhttp::read(stream, buf, parser, ec);
    }
    if (ec) {
      if (const int status = status_for(ec, stream.last_error())) {
        reply_error(stream, fd, status, opts.write_timeout);
      }
      return;
    }
    fd.set_deadline(PollMode::read, kNoDeadline);

    auto& breq = parser.get();
    const bool client_keeps = breq.keep_alive();
    const bool head = breq.method() == bhttp::verb::head;
    const unsigned version = breq.version();
    Request req = to_request(breq);
    req.remote_address = cs->remote;

    // The handler, with a request context and a watch for the client going away.
    auto [rctx, rcancel] = with_cancel(conn_ctx);
    Context hctx = rctx;
    if (const std::string* id = req.headers.find("X-Request-ID")) hctx = with_value(rctx, kRequestId, *id);
    struct Watch {
      char byte = 0;
      bool got = false;   // the next request's first byte arrived (pipelining)
      bool gone = false;  // EOF or an error: the client went away
    } watch;
    WaitGroup watcher;
    const bool watching = opts.detect_client_gone && buf.size() == 0;
    if (watching) {
      watcher.go(SpawnOptions{.name = "http.watch"}, [&fd, &watch, &rcancel = rcancel] {
        const net::IoResult r = fd.read(&watch.byte, 1, false, nullptr, std::source_location::current());
        if (r.n == 1) {
          watch.got = true;
        } else if (r.err != net::errc::timeout) {
          watch.gone = true;
          rcancel();
        }
      });
    }
    Response resp;
    bool failed = false;
    std::string failure;
    try {
      resp = handler(req, hctx);
    } catch (const std::exception& e) {  // recorded; acted on outside the handler (no park here)
      failed = true;
      failure = e.what();
    }
    requests.fetch_add(1, std::memory_order_relaxed);
    if (watching) {
      fd.set_deadline(PollMode::read, TimePoint(Duration(1)));  // long ago: ends the watch read
      watcher.wait();
      fd.set_deadline(PollMode::read, kNoDeadline);
      if (watch.got) {
        auto space = buf.prepare(1);
        *static_cast<char*>(space.data()) = watch.byte;
        buf.commit(1);
      }
    }
    rcancel();
    if (watch.gone) return;
    if (!failed && (resp.status < 100 || resp.status > 999)) {
      failed = true;
      failure = fmt::format("invalid status code {}", resp.status);
    }
    if (failed) {
      log(fmt::format("handler for {} {} failed: {}", req.method, req.target, failure));
      reply_error(stream, fd, 500, opts.write_timeout);
      return;
    }

    // The response, through Beast's serializer.
    bool closing = !client_keeps;
    {
      std::lock_guard lock(mu);
      closing = closing || shutting_down;
    }
    if (const std::string* c = resp.headers.find("Connection")) {
      if (boost::beast::iequals(*c, "close")) closing = true;
    }
    bhttp::response<bhttp::string_body> res;
    res.version(version == 10 ? 10 : 11);
    res.result(static_cast<unsigned>(resp.status));
    bool has_date = false, has_type = false;
    for (const auto& [name, value] : resp.headers) {
      if (Headers::name_equals(name, "Content-Length") || Headers::name_equals(name, "Transfer-Encoding") ||
          Headers::name_equals(name, "Connection")) {
        continue;  // computed below
      }
      has_date = has_date || Headers::name_equals(name, "Date");
      has_type = has_type || Headers::name_equals(name, "Content-Type");
      res.insert(name, value);
    }
    if (!has_date) res.set(bhttp::field::date, http_date());
    const bool bodiless = resp.status / 100 == 1 || resp.status == 204 || resp.status == 304;
    if (!bodiless) {
      if (!has_type && !resp.body.empty()) res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
      res.body() = std::move(resp.body);
    }
    res.keep_alive(!closing);
    res.prepare_payload();
    if (head) res.body().clear();  // Content-Length stays that of the GET response
    if (!write_message(stream, fd, res, opts.write_timeout)) return;
    if (closing || !become_idle(*cs)) return;
  }
}

// ---------------------------------------------------------------------------------------------
// Shutdown

std::size_t Server::Impl::force_close() {
  std::size_t n = 0;
  {
    std::lock_guard lock(mu);
    shutting_down = true;
    for (auto& ln : listeners) (void)ln.close();
    listeners.clear();
    for (auto& cs : conns) {
      if (cs->state != ConnState::State::closed) ++n;
      if (cs->state == ConnState::State::active) in_flight.fetch_sub(1, std::memory_order_relaxed);
      cs->state = ConnState::State::closed;
      (void)cs->conn.close();  // wakes its fiber wherever it is parked on the socket
    }
  }
  base_cancel();  // every request context
  return n;
}

void Server::close() { (void)impl_->force_close(); }

std::error_code Server::shutdown(const Context& ctx) {
  Impl& s = *impl_;
  std::size_t idle = 0, active = 0;
  {
    std::lock_guard lock(s.mu);
    s.shutting_down = true;
    for (auto& ln : s.listeners) (void)ln.close();
    s.listeners.clear();
    for (auto& cs : s.conns) {
      if (cs->state == ConnState::State::idle) {
        cs->state = ConnState::State::closed;
        (void)cs->conn.close();
        ++idle;
      } else if (cs->state == ConnState::State::active) {
        ++active;
      }
    }
  }
  s.log(fmt::format("shutdown: stopped accepting; closed {} idle connection(s); waiting for {} in-flight "
                    "request(s)",
                    idle, active));
  for (;;) {
    std::error_code waited;
    {
      auto [tick, stop_tick] = with_timeout(ctx, 500ms);
      waited = s.conns_wg.wait(tick);
    }
    if (!waited) {
      s.log("shutdown: complete");
      return {};
    }
    if (std::error_code e = ctx.err()) {
      const std::size_t n = s.force_close();
      s.log(fmt::format("shutdown: {}; force-closed {} connection(s)", e.message(), n));
      return e;
    }
    s.log(fmt::format("shutdown: still waiting for {} connection(s) ({} in flight)",
                      s.open.load(std::memory_order_relaxed), s.in_flight.load(std::memory_order_relaxed)));
  }
}

ServerStats Server::stats() const noexcept {
  ServerStats st;
  st.connections_accepted = impl_->accepted.load(std::memory_order_relaxed);
  st.connections_open = impl_->open.load(std::memory_order_relaxed);
  st.requests = impl_->requests.load(std::memory_order_relaxed);
  st.in_flight = impl_->in_flight.load(std::memory_order_relaxed);
  return st;
}

}  // namespace spindle::http
