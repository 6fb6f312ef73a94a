// PollFd: any pollable descriptor (a pipe, an eventfd, an inotify instance, a timerfd, a
// character device, a socket of any family) read and written through the netpoller, so that a
// call that would block parks only the calling fiber (Go's os.NewFile on a non-blocking fd,
// whose Read and Write go through internal/poll and the netpoller).
//
//   int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
//   auto [f, err] = spindle::net::PollFd::adopt(in);        // f owns the descriptor now
//   ::inotify_add_watch(f.native_handle(), "/tmp", IN_CLOSE_WRITE);
//   alignas(inotify_event) std::byte buf[4096];
//   auto [n, rerr] = f.read(ctx, buf);                        // parks until an event (or ctx)
//
// Semantics (those of net::Conn, which shares the implementation, src/net/fd.hpp):
//  * The descriptor is registered edge-triggered with the runtime's netpoller. A read or write
//    tries the system call first (read(2)/write(2)) and, on EAGAIN, parks the fiber until the
//    descriptor is ready, the deadline passes, the context is done or the handle is closed. The
//    worker thread is never blocked: other fibers run meanwhile.
//  * Errors are values (net::IoResult): net::errc::eof when read(2) returns 0 (a pipe whose
//    writers are all gone), net::errc::closed after close(), net::errc::timeout after a
//    deadline, ctx.err() for a context that ended the wait, or the system error (captured from
//    errno before anything could park). Writes never raise SIGPIPE: a write to a pipe with no
//    reader returns EPIPE.
//  * close() marks the handle closed, wakes every fiber parked on it (they return closed) and
//    closes the descriptor once the last call in flight has left it, so no call ever touches
//    a reused descriptor number.
//  * Reads are serialised with reads and writes with writes (the netpoller allows one parked
//    fiber per direction), so any number of fibers may share one handle.
//  * Descriptors epoll cannot watch (regular files and directories: EPERM) are refused by
//    adopt(); read those with spindle::blocking (net/blocking.hpp).
//
// Handles: a PollFd is a cheap copyable handle to the shared descriptor (as Conn); the
// descriptor is closed by close() or when the last handle goes. A default-constructed PollFd is
// not open: every call returns net::errc::closed.
// Lifetime: a PollFd belongs to the runtime it was adopted in; close it before run() returns.
// Thread-safety: every member may be called concurrently from any fiber of that runtime.
// Memory ordering: as the system calls themselves (a write(2) happens-before the read(2) that
// returns its bytes); close() happens-before a parked call returning closed.
#pragma once

#include <cstddef>
#include <memory>
#include <source_location>
#include <span>
#include <string_view>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/net/tcp.hpp>

namespace spindle {
class Context;
}

namespace spindle::net {

class PollFd {
 public:
  PollFd() noexcept = default;  // not open

  // Takes ownership of `fd` and registers it with the running runtime's netpoller. Puts the
  // descriptor in non-blocking mode (O_NONBLOCK) and close-on-exec if it is not already; mind
  // that O_NONBLOCK belongs to the open file description, shared with any process that holds
  // it (a terminal's stdin, say). On failure (EPERM for a regular file or a directory, EBADF)
  // closes fd and returns the error. Must be called in a fiber; throws spindle::RuntimeError
  // outside a runtime.
  [[nodiscard]] static Result<PollFd> adopt(int fd);

  // Reads what is available, at least one byte (parks until then): n > 0, or n == 0 with eof
  // (read(2) returned 0), closed, timeout, ctx.err() or a system error. An empty `buf` returns
  // {0, {}} at once. Descriptors with record semantics (eventfd: 8 bytes; inotify: whole
  // events) return EINVAL for a buffer too small for one record.
  IoResult read(std::span<std::byte> buf, std::source_location where = std::source_location::current());
  IoResult read(const Context& ctx, std::span<std::byte> buf,
                std::source_location where = std::source_location::current());
  // Reads exactly buf.size() bytes: unexpected_eof if read(2) returns 0 after some bytes.
  IoResult read_full(std::span<std::byte> buf, std::source_location where = std::source_location::current());
  IoResult read_full(const Context& ctx, std::span<std::byte> buf,
                     std::source_location where = std::source_location::current());

  // Writes some of `data` (at least one byte unless it fails); parks while the descriptor is
  // full (a pipe whose reader lags).
  IoResult write(std::span<const std::byte> data, std::source_location where = std::source_location::current());
  IoResult write(const Context& ctx, std::span<const std::byte> data,
                 std::source_location where = std::source_location::current());
  // Writes all of `data` (looping over partial writes); n is what was written before an error.
  IoResult write_all(std::span<const std::byte> data, std::source_location where = std::source_location::current());
  IoResult write_all(const Context& ctx, std::span<const std::byte> data,
                     std::source_location where = std::source_location::current());

  // Closes the handle (see the file comment); returns closed on a second close. Never blocks.
  std::error_code close();

  // Deadlines for pending and future reads / writes (as Conn's): absolute, kNoDeadline clears,
  // setting one wakes a parked call so that it re-checks. Thread-safe.
  void set_read_deadline(TimePoint t) noexcept;
  void set_write_deadline(TimePoint t) noexcept;
  void set_deadline(TimePoint t) noexcept {
    set_read_deadline(t);
    set_write_deadline(t);
  }

  // True for an adopted handle that has not been closed.
  [[nodiscard]] bool is_open() const noexcept;
  explicit operator bool() const noexcept { return is_open(); }
  // The descriptor, for ioctl, inotify_add_watch and the like (never read, write or close it
  // directly); -1 when not open.
  [[nodiscard]] int native_handle() const noexcept;

 private:
  explicit PollFd(std::shared_ptr<detail::NetFd> fd) noexcept : fd_(std::move(fd)) {}
  std::shared_ptr<detail::NetFd> fd_;
};

// The bytes of a string, for write/write_all: `f.write_all(net::as_bytes("hello"))`.
[[nodiscard]] inline std::span<const std::byte> as_bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace spindle::net
