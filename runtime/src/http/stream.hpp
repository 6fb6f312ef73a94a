// FiberStream: a Beast SyncReadStream + SyncWriteStream over a NetFd, so Beast's own parser and
// serializer (http::read, http::write) drive spindle's fiber sockets: a read or write that
// would block parks the fiber on the netpoller, nothing blocks a worker.
//
// Errors: the socket's std::error_code is kept (last_error()) so callers can tell a timeout, a
// cancelled context or a close apart after Beast hands back its own error; a clean EOF is
// reported to Beast as asio's error::eof, which Beast turns into end_of_stream or
// partial_message. Reads/writes honour the fd's deadlines and, if given, a context.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <source_location>
#include <system_error>

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include <spindle/context.hpp>

#include "net/fd.hpp"

namespace spindle::http::detail {

class FiberStream {
 public:
  explicit FiberStream(net::detail::NetFd& fd, const Context* ctx = nullptr) noexcept : fd_(fd), ctx_(ctx) {}

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it) {
      const boost::asio::mutable_buffer b = *it;
      if (b.size() == 0) continue;
      const net::IoResult r = fd_.read(static_cast<char*>(b.data()), b.size(), false, ctx_,
                                       std::source_location::current());
      return finish(r, ec, /*reading=*/true);
    }
    ec = {};
    return 0;
  }

  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    // Gather the sequence (Beast's header + body) into one sendmsg.
    constexpr int kMaxIov = 16;
    iovec iov[kMaxIov];
    int n = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && n < kMaxIov; ++it) {
      const boost::asio::const_buffer b = *it;
      if (b.size() == 0) continue;
      iov[n].iov_base = const_cast<void*>(b.data());
      iov[n].iov_len = b.size();
      ++n;
    }
    if (n == 0) {
      ec = {};
      return 0;
    }
    const net::IoResult r = fd_.writev(iov, n, ctx_, std::source_location::current());
    return finish(r, ec, /*reading=*/false);
  }

  // Throwing forms, required by Beast's stream concepts (spindle itself uses the ones above).
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const std::size_t n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    boost::system::error_code ec;
    const std::size_t n = write_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  // The socket-level error behind the last failed read or write (empty if Beast's error came
  // from parsing).
  [[nodiscard]] std::error_code last_error() const noexcept { return last_; }
  void clear_error() noexcept { last_ = {}; }
  void set_context(const Context* ctx) noexcept { ctx_ = ctx; }

 private:
  std::size_t finish(const net::IoResult& r, boost::system::error_code& ec, bool reading) {
    if (!r.err || r.n > 0) {
      // A partial write before an error still reports progress; the next call sees the error.
      ec = {};
      return r.n;
    }
    last_ = r.err;
    if (reading && r.err == net::errc::eof) {
      ec = boost::asio::error::eof;
    } else {
      ec = boost::system::error_code(r.err);
    }
    return 0;
  }

  net::detail::NetFd& fd_;
  const Context* ctx_;
  std::error_code last_;
};

}  // namespace spindle::http::detail
