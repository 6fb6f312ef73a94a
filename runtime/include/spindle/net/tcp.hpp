// TCP over the netpoller: listen/accept, dial, and Conn, whose reads and writes block only the
// calling fiber (Go's net.TCPListener and net.TCPConn).
//
//   auto [ln, err] = spindle::net::listen("127.0.0.1", 0);     // port 0: the kernel picks one
//   spindle::go([ln] () mutable {
//     for (;;) {
//       auto [conn, err] = ln.accept();
//       if (err) return;                                      // net::errc::closed after close()
//       spindle::go([conn] () mutable {
//         char buf[4096];
//         for (;;) {
//           auto [n, err] = conn.read(buf);
//           if (err) break;                                   // net::errc::eof: peer closed
//           if (conn.write_all({buf, n}).err) break;
//         }
//       });
//     }
//   });
//   auto [c, derr] = spindle::net::dial(ctx, "127.0.0.1", ln.port());
//
// Semantics (Go's, where C++ allows):
//  * Every socket is non-blocking and close-on-exec; a call that would block parks the fiber on
//    the netpoller (src/net/poller.hpp). Listeners set SO_REUSEADDR; connections TCP_NODELAY.
//  * Errors are std::error_code values, never exceptions: system errors (ECONNREFUSED,
//    ECONNRESET, EPIPE...) in std::system_category(), captured from errno right after the call
//    that set it (SEMANTICS.md: errno goes stale across a park); net::errc for the outcomes Go
//    names: closed (use of a closed connection), eof, unexpected_eof, timeout (a deadline passed;
//    equivalent to std::errc::timed_out); a context-aware call that gives up reports ctx.err().
//  * Deadlines (set_read_deadline, set_write_deadline) are absolute TimePoints that apply to
//    pending and future calls alike (setting one wakes a parked call so it re-checks), as Go's
//    SetDeadline; kNoDeadline clears. A call started after its deadline fails at once, even if
//    it could complete. A timed-out call leaves the connection usable: extend the deadline and
//    call again.
//  * close() marks the connection closed, wakes every fiber parked on it (they return
//    net::errc::closed), and releases the descriptor once the last call in flight has left it,
//    so a reused fd number is never read or written by a stale call (Go's fdMutex).
//  * Reads are serialised against reads and writes against writes (a second reader waits for the
//    first), so any number of fibers may share a connection.
//
// Handles: Listener and Conn are cheap copyable handles to a shared socket (capture them by
// value, as Go's *TCPConn); the socket is closed by close() or when the last handle goes.
// A default-constructed handle is not connected: every call returns net::errc::closed.
// Lifetime: a socket belongs to the runtime it was created in; close it before run() returns.
// Thread-safety: every member may be called concurrently from any fiber of that runtime.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <source_location>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

#include <spindle/clock.hpp>

namespace spindle {
class Context;
}

namespace spindle::net {

// Outcomes Go names in package net and io.
enum class errc : int {
  closed = 1,          // "use of closed network connection" (net.ErrClosed)
  eof = 2,             // "EOF": the peer closed its side (io.EOF)
  unexpected_eof = 3,  // "unexpected EOF": EOF in the middle of read_full (io.ErrUnexpectedEOF)
  timeout = 4,         // "i/o timeout": a read/write deadline passed (os.ErrDeadlineExceeded)
  no_such_host = 5,    // "no such host": name resolution found no address
  invalid_address = 6, // "invalid address": the host could not be parsed or resolved
};

// The category of net::errc; name() is "spindle.net". timeout is equivalent to
// std::errc::timed_out, closed to std::errc::bad_file_descriptor.
[[nodiscard]] const std::error_category& error_category() noexcept;
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// What a read or write returns (Go's `n, err`): the bytes transferred and why it stopped.
// read/write (some): n > 0 and no error, or n == 0 and an error. read_full/write_all: the bytes
// transferred before the error (all of them when err is empty).
struct [[nodiscard]] IoResult {
  std::size_t n = 0;
  std::error_code err;
  [[nodiscard]] bool ok() const noexcept { return !err; }
};

// A value and an error (Go's `v, err`): `auto [conn, err] = net::dial(ctx, host, port);`.
// `value` is a default (unconnected) handle when err is set.
template <class T>
struct [[nodiscard]] Result {
  T value{};
  std::error_code err;
  [[nodiscard]] bool ok() const noexcept { return !err; }
};

namespace detail {
class NetFd;
}

// A TCP connection.
class Conn {
 public:
  Conn() noexcept = default;  // not connected

  // Reads what is available, at least one byte (blocks the fiber until then). Returns n > 0, or
  // n == 0 with: eof (the peer closed its side), closed, timeout, a system error, or ctx.err().
  // An empty `buf` returns {0, {}} at once.
  IoResult read(std::span<char> buf, std::source_location where = std::source_location::current());
  IoResult read(const Context& ctx, std::span<char> buf,
                std::source_location where = std::source_location::current());
  // Reads exactly buf.size() bytes (Go's io.ReadFull): on EOF after some bytes reports
  // unexpected_eof, on EOF before any reports eof; n says how many arrived.
  IoResult read_full(std::span<char> buf, std::source_location where = std::source_location::current());
  IoResult read_full(const Context& ctx, std::span<char> buf,
                     std::source_location where = std::source_location::current());

  // Writes some of `data` (at least one byte unless it fails). Never raises SIGPIPE: a write to
  // a connection the peer has closed returns EPIPE or ECONNRESET.
  IoResult write(std::string_view data, std::source_location where = std::source_location::current());
  IoResult write(const Context& ctx, std::string_view data,
                 std::source_location where = std::source_location::current());
  // Writes all of `data` (looping over partial writes); n is what was written before an error.
  IoResult write_all(std::string_view data, std::source_location where = std::source_location::current());
  IoResult write_all(const Context& ctx, std::string_view data,
                     std::source_location where = std::source_location::current());

  // Half-close: the peer reads EOF after what was written; reading still works (shutdown
  // SHUT_WR). Returns closed if the connection is closed.
  std::error_code close_write();
  // Closes the connection (see the file comment). Returns closed on a second close. Never blocks.
  std::error_code close();

  // Deadlines for pending and future reads / writes (see the file comment). Thread-safe.
  void set_read_deadline(TimePoint t) noexcept;
  void set_write_deadline(TimePoint t) noexcept;
  void set_deadline(TimePoint t) noexcept {
    set_read_deadline(t);
    set_write_deadline(t);
  }

  // "ip:port" of each end (IPv6 in brackets); empty when not connected or closed.
  [[nodiscard]] std::string local_address() const;
  [[nodiscard]] std::string remote_address() const;
  [[nodiscard]] std::uint16_t local_port() const noexcept;
  [[nodiscard]] std::uint16_t remote_port() const noexcept;

  // True for a connected handle that has not been closed.
  [[nodiscard]] bool is_open() const noexcept;
  explicit operator bool() const noexcept { return is_open(); }
  // The descriptor, for setsockopt and the like (never read, write or close it directly); -1
  // when not connected.
  [[nodiscard]] int native_handle() const noexcept;

  [[nodiscard]] const std::shared_ptr<detail::NetFd>& detail_fd() const noexcept { return fd_; }
  explicit Conn(std::shared_ptr<detail::NetFd> fd) noexcept : fd_(std::move(fd)) {}

 private:
  std::shared_ptr<detail::NetFd> fd_;
};

// A listening TCP socket.
class Listener {
 public:
  Listener() noexcept = default;  // not listening

  // Waits for the next connection. Returns it, or closed (after close()), timeout (the deadline
  // set with set_deadline), ctx.err(), or a system error (EMFILE and friends: the caller may
  // back off and retry, as Go's http.Server does). Aborted handshakes are retried inside.
  Result<Conn> accept(std::source_location where = std::source_location::current());
  Result<Conn> accept(const Context& ctx, std::source_location where = std::source_location::current());

  // Stops listening; wakes a fiber parked in accept (it returns closed). Returns closed on a
  // second close. Connections already accepted are not affected.
  std::error_code close();
  // Deadline for pending and future accepts (Go's TCPListener.SetDeadline).
  void set_deadline(TimePoint t) noexcept;

  // The bound port (the kernel's choice when listen() was given 0) and "ip:port".
  [[nodiscard]] std::uint16_t port() const noexcept;
  [[nodiscard]] std::string address() const;
  [[nodiscard]] bool is_open() const noexcept;
  explicit operator bool() const noexcept { return is_open(); }
  [[nodiscard]] int native_handle() const noexcept;

  explicit Listener(std::shared_ptr<detail::NetFd> fd) noexcept : fd_(std::move(fd)) {}

 private:
  std::shared_ptr<detail::NetFd> fd_;
};

// Listens on host:port. `host` is a numeric IPv4/IPv6 address, a name (resolved through
// spindle::blocking, never on a worker thread), or empty / "0.0.0.0" for every IPv4 interface.
// Port 0 lets the kernel choose (see Listener::port()). Returns EADDRINUSE and friends as system
// errors. Must be called in a fiber.
Result<Listener> listen(std::string_view host, std::uint16_t port, int backlog = 4096);

// Connects to host:port, trying each resolved address in turn until one answers. Names are
// resolved with getaddrinfo on the blocking pool (numeric addresses skip it). Returns the
// connection, or ECONNREFUSED / ETIMEDOUT / ENETUNREACH (system errors, of the last address
// tried), no_such_host, or ctx.err() when ctx is done first (the half-open socket is closed).
// Must be called in a fiber.
Result<Conn> dial(const Context& ctx, std::string_view host, std::uint16_t port);
Result<Conn> dial(std::string_view host, std::uint16_t port);

}  // namespace spindle::net

template <>
struct std::is_error_code_enum<spindle::net::errc> : std::true_type {};
