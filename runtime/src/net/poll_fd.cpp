// PollFd: the public handle for any pollable descriptor (spindle/net/fd.hpp), a thin shell over
// NetFd (net/fd.hpp) adopted with FdKind::file, so pipes, eventfds and inotify instances share
// the netpoller, the reference-counted close and the deadline-aware waits of TCP connections.
// (This file is poll_fd.cpp because net/fd.cpp already holds NetFd itself.)
#include <spindle/net/fd.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <spindle/context.hpp>

#include "net/fd.hpp"

namespace spindle::net {

using detail::FdKind;
using detail::NetFd;
using detail::sys_error;

Result<PollFd> PollFd::adopt(int fd) {
  if (fd < 0) return {{}, sys_error(EBADF)};
  // Non-blocking and close-on-exec, whatever the creator chose: a blocking read(2) would hold
  // the worker thread, which is exactly what this type exists to avoid.
  const int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0) {
    const int err = errno;
    return {{}, sys_error(err)};  // not a descriptor we could own: nothing to close
  }
  if ((fl & O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0) {
    const int err = errno;
    ::close(fd);
    return {{}, sys_error(err)};
  }
  const int fdfl = ::fcntl(fd, F_GETFD);
  if (fdfl >= 0 && (fdfl & FD_CLOEXEC) == 0) (void)::fcntl(fd, F_SETFD, fdfl | FD_CLOEXEC);
  // A socket keeps recv/send (and shutdown on close), as Conn's do.
  struct stat st {};
  const FdKind kind = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) ? FdKind::socket : FdKind::file;
  auto [nfd, err] = NetFd::adopt(fd, kind);  // closes fd on failure (EPERM: regular file)
  if (err) return {{}, err};
  return {PollFd(std::move(nfd)), {}};
}

namespace {

char* chars(std::span<std::byte> b) noexcept { return reinterpret_cast<char*>(b.data()); }
const char* chars(std::span<const std::byte> b) noexcept { return reinterpret_cast<const char*>(b.data()); }

}  // namespace

IoResult PollFd::read(std::span<std::byte> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(chars(buf), buf.size(), false, nullptr, where);
}
IoResult PollFd::read(const Context& ctx, std::span<std::byte> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(chars(buf), buf.size(), false, &ctx, where);
}
IoResult PollFd::read_full(std::span<std::byte> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(chars(buf), buf.size(), true, nullptr, where);
}
IoResult PollFd::read_full(const Context& ctx, std::span<std::byte> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(chars(buf), buf.size(), true, &ctx, where);
}

IoResult PollFd::write(std::span<const std::byte> data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(chars(data), data.size(), false, nullptr, where);
}
IoResult PollFd::write(const Context& ctx, std::span<const std::byte> data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(chars(data), data.size(), false, &ctx, where);
}
IoResult PollFd::write_all(std::span<const std::byte> data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(chars(data), data.size(), true, nullptr, where);
}
IoResult PollFd::write_all(const Context& ctx, std::span<const std::byte> data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(chars(data), data.size(), true, &ctx, where);
}

std::error_code PollFd::close() {
  if (!fd_) return errc::closed;
  return fd_->close();
}
void PollFd::set_read_deadline(TimePoint t) noexcept {
  if (fd_) fd_->set_deadline(detail::PollMode::read, t);
}
void PollFd::set_write_deadline(TimePoint t) noexcept {
  if (fd_) fd_->set_deadline(detail::PollMode::write, t);
}
bool PollFd::is_open() const noexcept { return fd_ && !fd_->closed(); }
int PollFd::native_handle() const noexcept { return is_open() ? fd_->fd() : -1; }

}  // namespace spindle::net
