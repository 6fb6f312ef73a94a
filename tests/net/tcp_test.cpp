// TCP over real loopback sockets: echo at scale, partial reads and writes, deadlines, contexts,
// close while blocked, descriptor reuse, half-close, dial errors, no leaked descriptors.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <numeric>
#include <string>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "net/fd.hpp"
#include "net/net_support.hpp"
#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using testing::EchoServer;
using testing::open_fds;

// A connected pair over loopback: {client, server}.
struct Pair {
  net::Conn client, server;
};
Pair connected_pair() {
  auto [ln, err] = net::listen("127.0.0.1", 0);
  EXPECT_FALSE(err) << err.message();
  Pair p;
  WaitGroup wg;
  wg.go([&] {
    auto [c, e] = ln.accept();
    EXPECT_FALSE(e) << e.message();
    p.server = c;
  });
  auto [c, e] = net::dial("127.0.0.1", ln.port());
  EXPECT_FALSE(e) << e.message();
  p.client = c;
  wg.wait();
  (void)ln.close();
  return p;
}

std::string pattern(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  unsigned x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

FIBER_TEST(Tcp, EchoThousandsOfConcurrentConnections) {
  const int fds_before = testing::baseline_fds();
  const std::string fd_names = testing::fd_list();
  const long conns = testing::scaled(2000, 300, 150);
  {
    EchoServer server;
    std::atomic<long> ok{0};
    WaitGroup wg;
    for (long i = 0; i < conns; ++i) {
      wg.go([&, i] {
        auto [c, err] = net::dial("127.0.0.1", server.port());
        if (err) {
          ADD_FAILURE() << "dial: " << err.message();
          return;
        }
        const std::string msg = pattern(1 + static_cast<std::size_t>(i % 97) * 37, static_cast<unsigned>(i));
        // Everyone connects before anyone talks: all `conns` connections are open at once.
        this_fiber::yield();
        auto w = c.write_all(msg);
        EXPECT_FALSE(w.err) << w.err.message();
        std::string back(msg.size(), '\0');
        auto r = c.read_full(back);
        EXPECT_FALSE(r.err) << r.err.message();
        if (back == msg) ++ok;
        (void)c.close();
      });
    }
    wg.wait();
    EXPECT_EQ(ok.load(), conns);
    server.stop();
    EXPECT_EQ(server.accepted(), conns);
  }
  EXPECT_EQ(open_fds(), fds_before) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(Tcp, PartialWritesAndReadsDeliverEveryByteInOrder) {
  auto [client, server] = connected_pair();
  // Far more than the socket buffers hold: write_all must loop over partial writes while the
  // reader takes small, uneven bites.
  const std::string big = pattern(4 << 20, 7);
  WaitGroup wg;
  wg.go([&, client = client]() mutable {
    auto w = client.write_all(big);
    EXPECT_FALSE(w.err) << w.err.message();
    EXPECT_EQ(w.n, big.size());
    EXPECT_FALSE(client.close_write());
  });
  std::string got;
  std::vector<char> buf(1000);
  std::size_t reads = 0;
  for (;;) {
    const std::size_t want = 1 + (reads * 7919) % buf.size();
    auto [n, err] = server.read(std::span<char>(buf.data(), want));
    if (err) {
      EXPECT_EQ(err, net::errc::eof) << err.message();
      break;
    }
    EXPECT_LE(n, want);
    got.append(buf.data(), n);
    ++reads;
  }
  wg.wait();
  EXPECT_EQ(got.size(), big.size());
  EXPECT_TRUE(got == big);
  EXPECT_GT(reads, 1u);
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, ReadFullReportsUnexpectedEof) {
  auto [client, server] = connected_pair();
  EXPECT_FALSE(client.write_all("abc").err);
  EXPECT_FALSE(client.close_write());
  char buf[8];
  auto r = server.read_full(buf);
  EXPECT_EQ(r.n, 3u);
  EXPECT_EQ(r.err, net::errc::unexpected_eof);
  auto again = server.read(buf);
  EXPECT_EQ(again.err, net::errc::eof);
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, HalfCloseStillLetsThePeerAnswer) {
  auto [client, server] = connected_pair();
  EXPECT_FALSE(client.write_all("question").err);
  EXPECT_FALSE(client.close_write());
  std::string q;
  char buf[64];
  for (;;) {
    auto [n, err] = server.read(buf);
    if (err) {
      EXPECT_EQ(err, net::errc::eof);
      break;
    }
    q.append(buf, n);
  }
  EXPECT_EQ(q, "question");
  EXPECT_FALSE(server.write_all("answer").err);
  (void)server.close();
  std::string a(6, '\0');
  EXPECT_FALSE(client.read_full(a).err);
  EXPECT_EQ(a, "answer");
  (void)client.close();
}

FIBER_TEST(Tcp, ReadDeadlineFiresAndTheConnectionStaysUsable) {
  auto [client, server] = connected_pair();
  const auto start = Clock::now();
  server.set_read_deadline(start + 30ms);
  char buf[16];
  auto r = server.read(buf);
  EXPECT_EQ(r.err, net::errc::timeout);
  EXPECT_TRUE(r.err == std::errc::timed_out);
  EXPECT_GE(Clock::now() - start, 30ms);
  // A deadline in the past fails at once, even with data waiting.
  EXPECT_FALSE(client.write_all("x").err);
  EXPECT_EQ(server.read(buf).err, net::errc::timeout);
  server.set_read_deadline(kNoDeadline);
  auto again = server.read(buf);
  EXPECT_FALSE(again.err) << again.err.message();
  EXPECT_EQ(again.n, 1u);
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, WriteDeadlineFiresWhenThePeerNeverReads) {
  auto [client, server] = connected_pair();
  client.set_write_deadline(deadline_after(50ms));
  const std::string chunk(1 << 20, 'z');
  std::size_t total = 0;
  std::error_code err;
  for (int i = 0; i < 1000 && !err; ++i) {  // the buffers fill within a few MiB
    auto w = client.write_all(chunk);
    total += w.n;
    err = w.err;
  }
  EXPECT_EQ(err, net::errc::timeout);
  EXPECT_GT(total, 0u);
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, SettingADeadlineWakesAPendingRead) {
  auto [client, server] = connected_pair();
  std::atomic<bool> returned{false};
  std::error_code got;
  WaitGroup wg;
  wg.go([&, server = server]() mutable {
    char buf[4];
    got = server.read(buf).err;  // no deadline yet: would wait forever
    returned = true;
  });
  // Let the reader park (bounded: it cannot return before the deadline below is set).
  for (int i = 0; i < 100; ++i) this_fiber::yield();
  EXPECT_FALSE(returned.load());
  server.set_read_deadline(Clock::now());
  wg.wait();
  EXPECT_EQ(got, net::errc::timeout);
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, ContextEndsAWaitOnAPeerThatNeverAnswers) {
  auto [client, server] = connected_pair();
  char buf[8];
  {
    auto [ctx, cancel] = with_timeout(background(), 30ms);
    auto r = client.read(ctx, buf);
    EXPECT_EQ(r.err, errc::deadline_exceeded);
    EXPECT_GE(Clock::now(), *ctx.deadline());
  }
  {
    auto [ctx, cancel] = with_cancel(background());
    std::error_code got;
    WaitGroup wg;
    wg.go([&, ctx = ctx, client = client]() mutable { got = client.read(ctx, buf).err; });
    for (int i = 0; i < 50; ++i) this_fiber::yield();
    cancel();
    wg.wait();
    EXPECT_EQ(got, errc::canceled);
  }
  {  // an already-done context fails at once, even with data waiting
    EXPECT_FALSE(server.write_all("data").err);
    auto [ctx, cancel] = with_cancel(background());
    cancel();
    EXPECT_EQ(client.read(ctx, buf).err, errc::canceled);
    auto r = client.read_full(background(), std::span<char>(buf, 4));
    EXPECT_FALSE(r.err);
    EXPECT_EQ(std::string(buf, 4), "data");
  }
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, ClosingWakesFibersBlockedOnTheConnection) {
  const int fds_before = testing::baseline_fds();
  const std::string fd_names = testing::fd_list();
  {
    auto [client, server] = connected_pair();
    std::error_code read_err, write_err;
    WaitGroup wg;
    // One fiber parks reading (the server never writes), another parks writing (the server
    // never reads, so the buffers fill); then a third party closes the connection under them.
    wg.go([&, client = client]() mutable {
      char buf[4];
      read_err = client.read(buf).err;
    });
    wg.go([&, client = client]() mutable {
      const std::string chunk(1 << 20, 'q');
      for (;;) {
        auto w = client.write_all(chunk);
        if (w.err) {
          write_err = w.err;
          return;
        }
      }
    });
    while (detail::netpoller()->pending() < 2) this_fiber::yield();
    EXPECT_FALSE(client.close());
    wg.wait();
    EXPECT_EQ(read_err, net::errc::closed);
    EXPECT_EQ(write_err, net::errc::closed);
    EXPECT_EQ(client.close(), net::errc::closed);  // a second close
    char buf[1];
    EXPECT_EQ(client.read(buf).err, net::errc::closed);
    EXPECT_FALSE(client.is_open());
    // The peer sees the connection go away.
    server.set_read_deadline(deadline_after(10s));
    std::error_code peer;
    for (;;) {
      char drain[4096];
      auto r = server.read(drain);
      if (r.err) {
        peer = r.err;
        break;
      }
    }
    EXPECT_TRUE(peer == net::errc::eof || peer == std::errc::connection_reset) << peer.message();
    (void)server.close();
  }
  EXPECT_EQ(open_fds(), fds_before) << "before:\n" << fd_names << "after:\n" << testing::fd_list();
}

FIBER_TEST(Tcp, ClosingTheListenerWakesAccept) {
  auto [ln, err] = net::listen("127.0.0.1", 0);
  ASSERT_FALSE(err);
  std::error_code got;
  WaitGroup wg;
  wg.go([&, ln = ln]() mutable { got = ln.accept().err; });
  while (detail::netpoller()->pending() < 1) this_fiber::yield();
  EXPECT_FALSE(ln.close());
  wg.wait();
  EXPECT_EQ(got, net::errc::closed);
}

FIBER_TEST(Tcp, AcceptHonoursContextAndDeadline) {
  auto [ln, err] = net::listen("127.0.0.1", 0);
  ASSERT_FALSE(err);
  auto [ctx, cancel] = with_timeout(background(), 20ms);
  EXPECT_EQ(ln.accept(ctx).err, errc::deadline_exceeded);
  ln.set_deadline(deadline_after(20ms));
  EXPECT_EQ(ln.accept().err, net::errc::timeout);
  (void)ln.close();
}

FIBER_TEST(Tcp, ReusedDescriptorNumberGetsNoStaleData) {
  int reused = 0;
  for (int round = 0; round < 50; ++round) {
    auto [a_client, a_server] = connected_pair();
    EXPECT_FALSE(a_client.write_all("stale").err);  // unread: an edge for the old socket
    const int old_fd = a_server.native_handle();
    (void)a_server.close();
    (void)a_client.close();
    auto [b_client, b_server] = connected_pair();  // likely reuses the numbers just freed
    if (b_server.native_handle() == old_fd || b_client.native_handle() == old_fd) ++reused;
    char buf[8];
    b_server.set_read_deadline(deadline_after(2ms));
    EXPECT_EQ(b_server.read(buf).err, net::errc::timeout);
    b_client.set_read_deadline(deadline_after(2ms));
    EXPECT_EQ(b_client.read(buf).err, net::errc::timeout);
    // The old handles stay closed even though their number lives again.
    EXPECT_EQ(a_server.read(buf).err, net::errc::closed);
    EXPECT_EQ(a_server.write("x").err, net::errc::closed);
    (void)b_client.close();
    (void)b_server.close();
  }
  EXPECT_GT(reused, 0);  // the scenario really happened
}

FIBER_TEST(Tcp, ConcurrentReadersAreSerialisedAndLoseNothing) {
  auto [client, server] = connected_pair();
  constexpr int kReaders = 8;
  constexpr int kMessages = 400;
  std::atomic<long> sum{0}, count{0};
  WaitGroup wg;
  for (int r = 0; r < kReaders; ++r) {
    wg.go([&, server = server]() mutable {
      for (;;) {
        std::uint32_t v;
        auto res = server.read_full(std::span<char>(reinterpret_cast<char*>(&v), sizeof v));
        if (res.err) return;
        sum += v;
        ++count;
      }
    });
  }
  long want = 0;
  for (std::uint32_t i = 1; i <= kMessages; ++i) {
    want += i;
    EXPECT_FALSE(client.write_all({reinterpret_cast<const char*>(&i), sizeof i}).err);
    if (i % 16 == 0) this_fiber::yield();
  }
  EXPECT_FALSE(client.close_write());
  wg.wait();
  EXPECT_EQ(count.load(), kMessages);
  EXPECT_EQ(sum.load(), want);
  (void)client.close();
  (void)server.close();
}

FIBER_TEST(Tcp, DialErrors) {
  // A port nobody listens on: take one, then close it.
  auto [ln, err] = net::listen("127.0.0.1", 0);
  ASSERT_FALSE(err);
  const auto port = ln.port();
  (void)ln.close();
  auto [c, derr] = net::dial("127.0.0.1", port);
  EXPECT_TRUE(derr == std::errc::connection_refused) << derr.message();
  EXPECT_FALSE(c.is_open());
  auto [ctx, cancel] = with_cancel(background());
  cancel();
  EXPECT_EQ(net::dial(ctx, "127.0.0.1", port).err, errc::canceled);
  EXPECT_TRUE(net::dial("no-such-host.invalid", 80).err);
  EXPECT_EQ(net::Conn().read(std::span<char>()).err, net::errc::closed);
}

FIBER_TEST(Tcp, DialResolvesNamesOnTheBlockingPool) {
  EchoServer server;
  auto [c, err] = net::dial("localhost", server.port());
  ASSERT_FALSE(err) << err.message();
  EXPECT_EQ(c.remote_port(), server.port());
  EXPECT_EQ(c.remote_address(), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_FALSE(c.write_all("hi").err);
  char buf[2];
  EXPECT_FALSE(c.read_full(buf).err);
  (void)c.close();
  server.stop();
}

FIBER_TEST(Tcp, ListenErrors) {
  auto [ln, err] = net::listen("127.0.0.1", 0);
  ASSERT_FALSE(err);
  auto [ln2, err2] = net::listen("127.0.0.1", ln.port());
  EXPECT_TRUE(err2 == std::errc::address_in_use) << err2.message();
  EXPECT_FALSE(ln2.is_open());
  EXPECT_EQ(net::listen("not an address", 0).err.category(), net::error_category());
  (void)ln.close();
}

}  // namespace
}  // namespace spindle
