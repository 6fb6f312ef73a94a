// TCP: listen, accept, dial and the Conn/Listener handles over NetFd (spindle/net/tcp.hpp).
//
// Name resolution runs getaddrinfo on the blocking pool (spindle::blocking), never on a worker;
// numeric addresses are parsed in place and skip it.
#include <spindle/net/tcp.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/net/blocking.hpp>

#include "net/fd.hpp"

namespace spindle::net {

// ---------------------------------------------------------------------------------------------
// Error category

namespace {

class NetCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "spindle.net"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::closed: return "use of closed network connection";
      case errc::eof: return "EOF";
      case errc::unexpected_eof: return "unexpected EOF";
      case errc::timeout: return "i/o timeout";
      case errc::no_such_host: return "no such host";
      case errc::invalid_address: return "invalid address";
    }
    return "unknown spindle.net error";
  }
  std::error_condition default_error_condition(int ev) const noexcept override {
    switch (static_cast<errc>(ev)) {
      case errc::timeout: return std::errc::timed_out;
      case errc::closed: return std::errc::bad_file_descriptor;
      default: return {ev, *this};
    }
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const NetCategory category;
  return category;
}

// ---------------------------------------------------------------------------------------------
// Addresses

namespace {

using detail::NetFd;
using detail::sys_error;

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// A numeric address (IPv4, IPv6 with or without brackets); false if `host` is not one.
bool parse_numeric(std::string_view host, std::uint16_t port, Endpoint& out) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string h(host);
  auto* in = reinterpret_cast<sockaddr_in*>(&out.addr);
  if (::inet_pton(AF_INET, h.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    out.len = sizeof(sockaddr_in);
    return true;
  }
  out.addr = {};
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.addr);
  if (::inet_pton(AF_INET6, h.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    out.len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

struct Resolved {
  std::vector<Endpoint> endpoints;
  std::error_code err;
};

// getaddrinfo, on the blocking pool. IPv4 answers first (loopback names resolve to both).
Resolved resolve(const Context& ctx, std::string_view host, std::uint16_t port, bool passive) {
  Resolved r;
  Endpoint e;
  if (host.empty() && passive) host = "0.0.0.0";
  if (parse_numeric(host, port, e)) {
    r.endpoints.push_back(e);
    return r;
  }
  if (host.empty()) {
    r.err = errc::invalid_address;
    return r;
  }
  auto lookup = [name = std::string(host), port, passive]() -> Resolved {
    Resolved out;
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    const int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &res);
    const int err = errno;
    if (rc != 0) {
      if (rc == EAI_SYSTEM) out.err = sys_error(err);
      else if (rc == EAI_NONAME || rc == EAI_AGAIN || rc == EAI_FAIL || rc == EAI_NODATA) out.err = errc::no_such_host;
      else out.err = errc::invalid_address;
      return out;
    }
    for (int family : {AF_INET, AF_INET6}) {
      for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
        if (a->ai_family != family || a->ai_addrlen > sizeof(sockaddr_storage)) continue;
        Endpoint ep;
        std::memcpy(&ep.addr, a->ai_addr, a->ai_addrlen);
        ep.len = a->ai_addrlen;
        out.endpoints.push_back(ep);
      }
    }
    ::freeaddrinfo(res);
    if (out.endpoints.empty()) out.err = errc::no_such_host;
    return out;
  };
  auto res = blocking(ctx, std::move(lookup));
  if (res.err) {
    r.err = res.err;
    return r;
  }
  return std::move(*res.value);
}

int new_socket(int family, int& err) {
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  err = errno;
  return fd;
}

void set_nodelay(int fd) {
  const int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

std::string sock_address(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                      : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) return {};
  return detail::format_address(reinterpret_cast<sockaddr*>(&ss));
}

std::uint16_t sock_port(int fd, bool peer) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  const int rc = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
                      : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (rc != 0) return 0;
  return detail::port_of(reinterpret_cast<sockaddr*>(&ss));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Conn

IoResult Conn::read(std::span<char> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(buf.data(), buf.size(), false, nullptr, where);
}
IoResult Conn::read(const Context& ctx, std::span<char> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(buf.data(), buf.size(), false, &ctx, where);
}
IoResult Conn::read_full(std::span<char> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(buf.data(), buf.size(), true, nullptr, where);
}
IoResult Conn::read_full(const Context& ctx, std::span<char> buf, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->read(buf.data(), buf.size(), true, &ctx, where);
}
IoResult Conn::write(std::string_view data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(data.data(), data.size(), false, nullptr, where);
}
IoResult Conn::write(const Context& ctx, std::string_view data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(data.data(), data.size(), false, &ctx, where);
}
IoResult Conn::write_all(std::string_view data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(data.data(), data.size(), true, nullptr, where);
}
IoResult Conn::write_all(const Context& ctx, std::string_view data, std::source_location where) {
  if (!fd_) return {0, errc::closed};
  return fd_->write(data.data(), data.size(), true, &ctx, where);
}

std::error_code Conn::close_write() {
  if (!fd_) return errc::closed;
  return fd_->shutdown_write();
}
std::error_code Conn::close() {
  if (!fd_) return errc::closed;
  return fd_->close();
}
void Conn::set_read_deadline(TimePoint t) noexcept {
  if (fd_) fd_->set_deadline(detail::PollMode::read, t);
}
void Conn::set_write_deadline(TimePoint t) noexcept {
  if (fd_) fd_->set_deadline(detail::PollMode::write, t);
}
std::string Conn::local_address() const { return is_open() ? sock_address(fd_->fd(), false) : std::string(); }
std::string Conn::remote_address() const { return is_open() ? sock_address(fd_->fd(), true) : std::string(); }
std::uint16_t Conn::local_port() const noexcept { return is_open() ? sock_port(fd_->fd(), false) : 0; }
std::uint16_t Conn::remote_port() const noexcept { return is_open() ? sock_port(fd_->fd(), true) : 0; }
bool Conn::is_open() const noexcept { return fd_ && !fd_->closed(); }
int Conn::native_handle() const noexcept { return is_open() ? fd_->fd() : -1; }

// ---------------------------------------------------------------------------------------------
// Listener

namespace {

Result<Conn> accept_on(const std::shared_ptr<NetFd>& fd, const Context* ctx, std::source_location where) {
  if (!fd) return {{}, errc::closed};
  int c = -1;
  if (std::error_code ec = fd->accept(c, ctx, where)) return {{}, ec};
  set_nodelay(c);
  auto [nfd, err] = NetFd::adopt(c);
  if (err) return {{}, err};
  return {Conn(std::move(nfd)), {}};
}

}  // namespace

Result<Conn> Listener::accept(std::source_location where) { return accept_on(fd_, nullptr, where); }
Result<Conn> Listener::accept(const Context& ctx, std::source_location where) {
  return accept_on(fd_, &ctx, where);
}
std::error_code Listener::close() {
  if (!fd_) return errc::closed;
  return fd_->close();
}
void Listener::set_deadline(TimePoint t) noexcept {
  if (fd_) fd_->set_deadline(detail::PollMode::read, t);
}
std::uint16_t Listener::port() const noexcept { return is_open() ? sock_port(fd_->fd(), false) : 0; }
std::string Listener::address() const { return is_open() ? sock_address(fd_->fd(), false) : std::string(); }
bool Listener::is_open() const noexcept { return fd_ && !fd_->closed(); }
int Listener::native_handle() const noexcept { return is_open() ? fd_->fd() : -1; }

// ---------------------------------------------------------------------------------------------
// listen, dial

Result<Listener> listen(std::string_view host, std::uint16_t port, int backlog) {
  const Context bg;
  Resolved r = resolve(bg, host, port, /*passive=*/true);
  if (r.err) return {{}, r.err};
  std::error_code last = errc::invalid_address;
  for (const Endpoint& ep : r.endpoints) {
    int err = 0;
    const int fd = new_socket(ep.addr.ss_family, err);
    if (fd < 0) {
      last = sys_error(err);
      continue;
    }
    const int one = 1;
    (void)::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len) != 0 ||
        ::listen(fd, backlog) != 0) {
      err = errno;
      ::close(fd);
      last = sys_error(err);
      continue;
    }
    auto [nfd, aerr] = NetFd::adopt(fd);
    if (aerr) return {{}, aerr};
    return {Listener(std::move(nfd)), {}};
  }
  return {{}, last};
}

Result<Conn> dial(const Context& ctx, std::string_view host, std::uint16_t port) {
  if (std::error_code ec = spindle::detail::context_err(ctx)) return {{}, ec};
  Resolved r = resolve(ctx, host, port, /*passive=*/false);
  if (r.err) return {{}, r.err};
  std::error_code last = errc::no_such_host;
  for (const Endpoint& ep : r.endpoints) {
    int err = 0;
    const int fd = new_socket(ep.addr.ss_family, err);
    if (fd < 0) {
      last = sys_error(err);
      continue;
    }
    set_nodelay(fd);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len);
    err = errno;
    if (rc != 0 && err != EINPROGRESS && err != EINTR) {
      ::close(fd);
      last = sys_error(err);
      continue;
    }
    auto [nfd, aerr] = NetFd::adopt(fd);
    if (aerr) return {{}, aerr};
    if (rc != 0) {
      if (std::error_code ec = nfd->finish_connect(&ctx, std::source_location::current())) {
        (void)nfd->close();
        if (spindle::detail::context_err(ctx)) return {{}, ec};  // cancelled: stop trying
        last = ec;
        continue;
      }
    }
    return {Conn(std::move(nfd)), {}};
  }
  return {{}, last};
}

Result<Conn> dial(std::string_view host, std::uint16_t port) { return dial(Context{}, host, port); }

}  // namespace spindle::net
