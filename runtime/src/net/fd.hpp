// NetFd: a non-blocking socket registered with the netpoller, shared by Conn and Listener
// handles (and by the HTTP layer, which uses it directly for vectored writes). The same machinery
// serves other pollable descriptors (pipes, eventfd, inotify, timerfd: net::PollFd), adopted
// with FdKind::file: their reads and writes use read(2)/write(2) instead of recv/send, and
// close() does not shut them down (there is nothing to shut down; evicting wakes the waiters).
//
// Invariants (Go's fdMutex + pollDesc, internal/poll/fd_mutex.go):
//  * state_ holds a reference count and a "closed" bit. Every operation takes a reference for
//    its whole duration (OpGuard) and fails with net::errc::closed once the bit is set. The
//    handle itself holds one reference, dropped by close().
//  * close() sets the bit, shuts the socket down if calls are still in flight (so a listener
//    refuses new connections and a peer sees the FIN at once), evicts the poll descriptor (parked
//    calls wake with closed, later waits fail at once), then drops the handle's reference. Whoever drops the last reference
//    unregisters the descriptor from the poller and closes the fd: so no call can ever issue a
//    system call on an fd number that was closed (and perhaps reused), nor park on a poll slot
//    that was handed to another socket.
//  * Calls in one direction are serialised by a spindle::Mutex (reads with reads, writes with
//    writes), because the poller allows one parked fiber per direction.
//  * Deadlines are atomics read at each wait; set_deadline also wakes a call parked in that
//    direction (under wait_mu_, which the call's Interrupt registers under), so a deadline change
//    applies to pending calls too. The call then re-reads the deadline and waits again.
//  * errno is copied into a local in the same function as the system call, before anything can
//    park (SEMANTICS.md).
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <source_location>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/context.hpp>
#include <spindle/detail/spinlock.hpp>
#include <spindle/mutex.hpp>
#include <spindle/net/tcp.hpp>

#include "net/poller.hpp"

namespace spindle::net::detail {

using spindle::detail::PollDesc;
using spindle::detail::PollMode;
using spindle::detail::Netpoller;

// std::error_code for a system errno.
[[nodiscard]] inline std::error_code sys_error(int err) noexcept {
  return {err, std::system_category()};
}

// What kind of descriptor a NetFd holds: a socket (recv/send, shutdown on close) or any other
// pollable descriptor (read/write; writes never raise SIGPIPE either).
enum class FdKind : std::uint8_t { socket, file };

class NetFd {
 public:
  // Takes ownership of `fd` (non-blocking, close-on-exec) and registers it with the running
  // runtime's netpoller. On failure closes fd and returns an error. Must run in a fiber.
  static Result<std::shared_ptr<NetFd>> adopt(int fd, FdKind kind = FdKind::socket);

  NetFd(int fd, PollDesc* pd, Netpoller* np, FdKind kind = FdKind::socket) noexcept
      : fd_(fd), pd_(pd), np_(np), kind_(kind) {}
  ~NetFd();
  NetFd(const NetFd&) = delete;
  NetFd& operator=(const NetFd&) = delete;

  [[nodiscard]] int fd() const noexcept { return fd_; }
  [[nodiscard]] bool closed() const noexcept {
    return (state_.load(std::memory_order_acquire) & kClosedBit) != 0;
  }

  // One read/write syscall's worth, or all of it (`full`). ctx may be null.
  IoResult read(char* buf, std::size_t len, bool full, const Context* ctx, std::source_location where);
  IoResult write(const char* buf, std::size_t len, bool all, const Context* ctx,
                 std::source_location where);
  // Writes every byte of the `n` vectors (sendmsg); `iov` is modified (advanced) on partial
  // writes. Returns the total written.
  IoResult writev(iovec* iov, int n, const Context* ctx, std::source_location where);
  // Accepts one connection (accept4, non-blocking, close-on-exec); retries ECONNABORTED.
  std::error_code accept(int& out, const Context* ctx, std::source_location where);
  // Waits for a non-blocking connect() in progress to finish; returns SO_ERROR.
  std::error_code finish_connect(const Context* ctx, std::source_location where);

  std::error_code shutdown_write();
  std::error_code close();
  void set_deadline(PollMode mode, TimePoint t) noexcept;
  [[nodiscard]] TimePoint deadline(PollMode mode) const noexcept {
    return TimePoint(Duration(deadline_[idx(mode)].load(std::memory_order_acquire)));
  }

  // True if the peer has not closed the connection and no error is pending, checked without
  // blocking (recv MSG_PEEK): a pooled idle connection that fails it is stale. Consumes nothing.
  [[nodiscard]] bool alive();

 private:
  friend class OpGuard;
  friend struct IoWait;
  static constexpr std::uint64_t kClosedBit = std::uint64_t{1} << 63;
  static constexpr int idx(PollMode m) noexcept { return m == PollMode::read ? 0 : 1; }

  bool incref() noexcept;
  void decref() noexcept;
  void destroy() noexcept;
  [[nodiscard]] std::error_code closed_or(std::error_code ec) const noexcept;
  // Parks until the fd is ready for `mode` (empty code), or returns why not.
  std::error_code wait(PollMode mode, const Context* ctx, std::source_location where);

  const int fd_;
  PollDesc* const pd_;
  Netpoller* const np_;
  const FdKind kind_;
  std::atomic<std::uint64_t> state_{1};  // refs | kClosedBit; the handle's own reference
  Mutex mu_[2];                          // read, write
  std::atomic<Duration::rep> deadline_[2] = {kNoDeadline.time_since_epoch().count(),
                                             kNoDeadline.time_since_epoch().count()};
  spindle::detail::SpinLock wait_mu_;    // guards waiter_
  spindle::detail::Waiter* waiter_[2] = {nullptr, nullptr};
};

// A connected handle's fd, or null (for the HTTP layer and tests).
[[nodiscard]] inline NetFd* fd_of(const Conn& c) noexcept { return c.detail_fd().get(); }

// "ip:port" for a socket address (IPv6 in brackets).
[[nodiscard]] std::string format_address(const sockaddr* sa);
[[nodiscard]] std::uint16_t port_of(const sockaddr* sa) noexcept;

}  // namespace spindle::net::detail
