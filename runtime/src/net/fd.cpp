// NetFd: reference-counted close, per-direction serialisation, deadline-aware waits (fd.hpp).
#include "net/fd.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include <spindle/errors.hpp>

#include "sched/scheduler.hpp"

namespace spindle::net::detail {

using spindle::detail::Interrupt;
using spindle::detail::PollResult;
using spindle::detail::Waiter;
using spindle::detail::WakeReason;

// ---------------------------------------------------------------------------------------------
// Holding the descriptor for one call

// Takes a reference and the direction's lock for the duration of one call; fails with closed
// once close() has begun, or with ctx.err().
class OpGuard {
 public:
  OpGuard(NetFd& fd, PollMode mode, const Context* ctx, std::error_code& ec) {
    if (ctx != nullptr) {
      if (std::error_code e = spindle::detail::context_err(*ctx)) {
        ec = e;
        return;
      }
    }
    if (!fd.incref()) {
      ec = errc::closed;
      return;
    }
    Mutex& mu = fd.mu_[NetFd::idx(mode)];
    if (ctx != nullptr) {
      if (std::error_code e = mu.lock(*ctx)) {
        fd.decref();
        ec = e;
        return;
      }
    } else {
      mu.lock();
    }
    if (fd.closed()) {  // closed while we queued behind another call
      mu.unlock();
      fd.decref();
      ec = errc::closed;
      return;
    }
    fd_ = &fd;
    mu_ = &mu;
  }
  ~OpGuard() {
    if (fd_ != nullptr) {
      mu_->unlock();
      fd_->decref();
    }
  }
  OpGuard(const OpGuard&) = delete;
  OpGuard& operator=(const OpGuard&) = delete;

 private:
  NetFd* fd_ = nullptr;
  Mutex* mu_ = nullptr;
};

// The Interrupt a wait passes to the poller: the context's (if any) plus "the deadline of this
// direction changed", so set_deadline reaches a call that is already parked.
struct IoWait {
  NetFd* fd;
  int dir;
  Duration::rep used;  // the deadline this wait was computed from
  Interrupt ctx_in{};
  Interrupt in{this, &arm, &disarm};

  IoWait(NetFd* f, int d, Duration::rep u) noexcept : fd(f), dir(d), used(u) {}
  IoWait(const IoWait&) = delete;
  IoWait& operator=(const IoWait&) = delete;

  static void arm(void* self, Waiter& w) {
    auto* s = static_cast<IoWait*>(self);
    NetFd& fd = *s->fd;
    fd.wait_mu_.lock();
    fd.waiter_[s->dir] = &w;
    // A deadline set between our read of it and this registration did not see us: act on it.
    const bool changed = fd.deadline_[s->dir].load(std::memory_order_acquire) != s->used;
    const bool wake = changed && w.claim(WakeReason::canceled);
    fd.wait_mu_.unlock();
    if (wake) w.ready();
    if (s->ctx_in.self != nullptr) s->ctx_in.arm(s->ctx_in.self, w);
  }
  static void disarm(void* self, Waiter& w) {
    auto* s = static_cast<IoWait*>(self);
    if (s->ctx_in.self != nullptr) s->ctx_in.disarm(s->ctx_in.self, w);
    NetFd& fd = *s->fd;
    fd.wait_mu_.lock();
    if (fd.waiter_[s->dir] == &w) fd.waiter_[s->dir] = nullptr;
    fd.wait_mu_.unlock();
  }
};

// ---------------------------------------------------------------------------------------------
// Lifetime

Result<std::shared_ptr<NetFd>> NetFd::adopt(int fd, FdKind kind) {
  Netpoller* np = spindle::detail::netpoller();
  if (np == nullptr) {
    ::close(fd);
    throw RuntimeError("spindle::net: no runtime is running (sockets live inside spindle::run)");
  }
  PollDesc* pd = nullptr;
  std::error_code ec;
  try {
    pd = np->open(fd);
  } catch (const std::system_error& e) {
    ec = e.code();
  }
  if (ec) {
    ::close(fd);
    return {nullptr, ec};
  }
  return {std::make_shared<NetFd>(fd, pd, np, kind), {}};
}

NetFd::~NetFd() {
  if (closed()) return;  // the last reference was dropped by close() or the call after it
  if (spindle::detail::current_scheduler() == nullptr) {
    // The runtime (and its poller) is gone: only the descriptor is left to release.
    ::close(fd_);
    return;
  }
  (void)close();
}

bool NetFd::incref() noexcept {
  std::uint64_t s = state_.load(std::memory_order_acquire);
  do {
    if ((s & kClosedBit) != 0) return false;
  } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire));
  return true;
}

void NetFd::decref() noexcept {
  const std::uint64_t s = state_.fetch_sub(1, std::memory_order_acq_rel) - 1;
  if (s == kClosedBit) destroy();  // closed, and this was the last reference
}

void NetFd::destroy() noexcept {
  np_->close(pd_);  // unregister before the fd number can be reused
  ::close(fd_);
}

std::error_code NetFd::close() {
  std::uint64_t s = state_.load(std::memory_order_acquire);
  do {
    if ((s & kClosedBit) != 0) return errc::closed;
  } while (!state_.compare_exchange_weak(s, s | kClosedBit, std::memory_order_acq_rel,
                                         std::memory_order_acquire));
  if ((s & ~kClosedBit) > 1 && kind_ == FdKind::socket) {
    // Calls are in flight, so the descriptor itself is closed only when the last one leaves.
    // Shut the socket down now so the close takes effect at once for the outside world: a
    // listener stops accepting (the kernel resets its queue and refuses new connections), a
    // connection sends its FIN. The fd number stays ours until then, so this is safe.
    (void)::shutdown(fd_, SHUT_RDWR);
  }
  np_->evict(pd_);  // parked calls wake with closed; later waits fail at once
  decref();         // the handle's own reference
  return {};
}

void NetFd::set_deadline(PollMode mode, TimePoint t) noexcept {
  const int d = idx(mode);
  wait_mu_.lock();
  deadline_[d].store(t.time_since_epoch().count(), std::memory_order_release);
  Waiter* w = waiter_[d];
  const bool wake = w != nullptr && w->claim(WakeReason::canceled);
  wait_mu_.unlock();
  if (wake) w->ready();  // it re-reads the deadline and waits again, or times out
}

// ---------------------------------------------------------------------------------------------
// Waiting

std::error_code NetFd::wait(PollMode mode, const Context* ctx, std::source_location where) {
  const int d = idx(mode);
  for (;;) {
    const Duration::rep rep = deadline_[d].load(std::memory_order_acquire);
    const TimePoint dl{Duration(rep)};
    if (dl != kNoDeadline && spindle::now() >= dl) return errc::timeout;
    IoWait iw(this, d, rep);
    TimePoint until = dl;
    if (ctx != nullptr) {
      iw.ctx_in = spindle::detail::context_interrupt(*ctx);
      until = std::min(until, spindle::detail::context_deadline(*ctx));
    }
    const PollResult r = np_->wait(pd_, mode, until, &iw.in, where);
    switch (r) {
      case PollResult::ready:
        return {};
      case PollResult::closed:
        return errc::closed;
      case PollResult::timeout:
      case PollResult::canceled:
        if (ctx != nullptr) {
          if (std::error_code e = spindle::detail::context_err(*ctx)) return e;
        }
        break;  // our deadline passed or changed: the loop re-reads it
    }
  }
}

// read(2) / write(2) for FdKind::file. A write to a pipe whose reader is gone raises SIGPIPE,
// which would end the process: send() has MSG_NOSIGNAL, write() has nothing of the kind, so
// SIGPIPE is blocked on this thread around the call and, if the write raised it (EPIPE, and it
// was not already pending), consumed with sigtimedwait before unblocking (the POSIX recipe;
// libcurl and OpenSSL do the same). No park can happen in between: the mask is the thread's.
static ssize_t file_write(int fd, const char* buf, std::size_t len, int& err) noexcept {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  sigset_t pending;
  sigemptyset(&pending);
  (void)::sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  (void)::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  const ssize_t n = ::write(fd, buf, len);
  err = errno;
  if (n < 0 && err == EPIPE && !was_pending) {
    const timespec zero{0, 0};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  (void)::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  return n;
}

// A deadline that has passed fails the call before its system call (Go: prepareRead).
static bool expired(const std::atomic<Duration::rep>& deadline) noexcept {
  const TimePoint dl{Duration(deadline.load(std::memory_order_acquire))};
  return dl != kNoDeadline && spindle::now() >= dl;
}

// A call that fails after close() began reports closed, not what the shut-down socket said
// (EINVAL from accept, EOF or EPIPE from a connection: close() shuts it down under the call).
std::error_code NetFd::closed_or(std::error_code ec) const noexcept {
  return closed() ? std::error_code(errc::closed) : ec;
}

IoResult NetFd::read(char* buf, std::size_t len, bool full, const Context* ctx,
                     std::source_location where) {
  if (len == 0) return {};
  std::error_code ec;
  OpGuard guard(*this, PollMode::read, ctx, ec);
  if (ec) return {0, ec};
  std::size_t done = 0;
  for (;;) {
    if (expired(deadline_[0])) return {done, errc::timeout};
    const ssize_t n = kind_ == FdKind::socket ? ::recv(fd_, buf + done, len - done, 0)
                                              : ::read(fd_, buf + done, len - done);
    const int err = errno;  // before anything can park (SEMANTICS.md)
    if (n > 0) {
      done += static_cast<std::size_t>(n);
      if (!full || done == len) return {done, {}};
      continue;
    }
    if (n == 0) return {done, closed_or(done == 0 ? errc::eof : errc::unexpected_eof)};
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) return {done, closed_or(sys_error(err))};
    if (std::error_code e = wait(PollMode::read, ctx, where)) return {done, e};
  }
}

IoResult NetFd::write(const char* buf, std::size_t len, bool all, const Context* ctx,
                      std::source_location where) {
  if (len == 0) return {};
  std::error_code ec;
  OpGuard guard(*this, PollMode::write, ctx, ec);
  if (ec) return {0, ec};
  std::size_t done = 0;
  for (;;) {
    if (expired(deadline_[1])) return {done, errc::timeout};
    int err = 0;
    ssize_t n;
    if (kind_ == FdKind::socket) {
      n = ::send(fd_, buf + done, len - done, MSG_NOSIGNAL);
      err = errno;
    } else {
      n = file_write(fd_, buf + done, len - done, err);
    }
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      if (done == len || (!all && n > 0)) return {done, {}};
      continue;
    }
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) return {done, closed_or(sys_error(err))};
    if (std::error_code e = wait(PollMode::write, ctx, where)) return {done, e};
  }
}

IoResult NetFd::writev(iovec* iov, int n, const Context* ctx, std::source_location where) {
  std::error_code ec;
  OpGuard guard(*this, PollMode::write, ctx, ec);
  if (ec) return {0, ec};
  std::size_t done = 0;
  while (n > 0 && iov->iov_len == 0) {
    ++iov;
    --n;
  }
  while (n > 0) {
    if (expired(deadline_[1])) return {done, errc::timeout};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(n);
    const ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    const int err = errno;
    if (w >= 0) {
      auto left = static_cast<std::size_t>(w);
      done += left;
      while (n > 0 && left >= iov->iov_len) {
        left -= iov->iov_len;
        ++iov;
        --n;
      }
      if (n > 0) {
        iov->iov_base = static_cast<char*>(iov->iov_base) + left;
        iov->iov_len -= left;
        while (n > 0 && iov->iov_len == 0) {
          ++iov;
          --n;
        }
      }
      continue;
    }
    if (err == EINTR) continue;
    if (err != EAGAIN && err != EWOULDBLOCK) return {done, closed_or(sys_error(err))};
    if (std::error_code e = wait(PollMode::write, ctx, where)) return {done, e};
  }
  return {done, {}};
}

std::error_code NetFd::accept(int& out, const Context* ctx, std::source_location where) {
  std::error_code ec;
  OpGuard guard(*this, PollMode::read, ctx, ec);
  if (ec) return ec;
  for (;;) {
    if (expired(deadline_[0])) return errc::timeout;
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    const int err = errno;
    if (c >= 0) {
      out = c;
      return {};
    }
    if (err == EINTR || err == ECONNABORTED) continue;  // the client gave up: take the next
    if (err != EAGAIN && err != EWOULDBLOCK) return closed_or(sys_error(err));
    if (std::error_code e = wait(PollMode::read, ctx, where)) return e;
  }
}

std::error_code NetFd::finish_connect(const Context* ctx, std::source_location where) {
  std::error_code ec;
  OpGuard guard(*this, PollMode::write, ctx, ec);
  if (ec) return ec;
  for (;;) {
    if (std::error_code e = wait(PollMode::write, ctx, where)) return e;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0) {
      const int err = errno;
      return sys_error(err);
    }
    if (soerr == EINPROGRESS || soerr == EALREADY || soerr == EINTR) continue;
    if (soerr != 0 && soerr != EISCONN) return closed_or(sys_error(soerr));
    // Writable and no error: make sure it is really connected (a stale edge from before the
    // connect can look the same; Go checks with getpeername too).
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return {};
    const int err = errno;
    if (err != ENOTCONN) return sys_error(err);
  }
}

std::error_code NetFd::shutdown_write() {
  if (!incref()) return errc::closed;
  std::error_code ec;
  if (::shutdown(fd_, SHUT_WR) != 0) {
    const int err = errno;
    ec = sys_error(err);
  }
  decref();
  return ec;
}

bool NetFd::alive() {
  if (!incref()) return false;
  char c;
  const ssize_t n = ::recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  const int err = errno;
  decref();
  return n < 0 && (err == EAGAIN || err == EWOULDBLOCK);
}

// ---------------------------------------------------------------------------------------------
// Addresses

std::string format_address(const sockaddr* sa) {
  char ip[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
    return fmt::format("{}:{}", ip, ntohs(in->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
    return fmt::format("[{}]:{}", ip, ntohs(in6->sin6_port));
  }
  return {};
}

std::uint16_t port_of(const sockaddr* sa) noexcept {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

}  // namespace spindle::net::detail
