// PollFd over pipes, eventfd and inotify: a reader parks on the netpoller and wakes on a write;
// a context or a deadline ends the wait; close wakes a parked reader; the worker thread stays
// free (other fibers run while one waits, even at one worker); full pipes park writers; EPIPE
// instead of SIGPIPE; regular files are refused; nothing leaks.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/net/fd.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "net/net_support.hpp"
#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using net::PollFd;
using testing::baseline_fds;
using testing::open_fds;

struct Pipe {
  PollFd r, w;
};
Pipe make_pipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
  auto [r, rerr] = PollFd::adopt(fds[0]);
  EXPECT_FALSE(rerr) << rerr.message();
  auto [w, werr] = PollFd::adopt(fds[1]);
  EXPECT_FALSE(werr) << werr.message();
  return {r, w};
}

// Until `n` fibers are parked on the netpoller (bounded by the fixture's hang guard).
void wait_parked(int n) {
  while (detail::netpoller()->pending() < n) this_fiber::yield();
}

std::string str(const std::byte* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

FIBER_TEST(PollFd, ReaderParksAndWakesOnWrite) {
  const int before = baseline_fds();
  {
    Pipe p = make_pipe();
    std::string got;
    WaitGroup wg;
    wg.go([&] {
      std::byte buf[64];
      auto [n, err] = p.r.read(buf);
      EXPECT_FALSE(err) << err.message();
      got = str(buf, n);
    });
    wait_parked(1);  // the reader got EAGAIN and parked on the poller
    EXPECT_TRUE(got.empty());
    auto [n, err] = p.w.write_all(net::as_bytes("hello"));
    EXPECT_FALSE(err);
    EXPECT_EQ(n, 5u);
    wg.wait();
    EXPECT_EQ(got, "hello");
    EXPECT_FALSE(p.r.close());
    EXPECT_FALSE(p.w.close());
    EXPECT_EQ(p.r.close(), net::errc::closed);  // a second close
  }
  EXPECT_EQ(open_fds(), before) << testing::fd_list();
}

FIBER_TEST(PollFd, EventfdCountsEveryWrite) {
  const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ASSERT_GE(efd, 0);
  auto [ev, err] = PollFd::adopt(efd);
  ASSERT_FALSE(err) << err.message();
  constexpr int kWriters = 8;
  constexpr std::uint64_t kEach = 25;
  WaitGroup wg;
  for (int i = 0; i < kWriters; ++i) {
    wg.go([ev]() mutable {
      for (std::uint64_t k = 0; k < kEach; ++k) {
        const std::uint64_t one = 1;
        auto r = ev.write(std::as_bytes(std::span(&one, 1)));
        EXPECT_EQ(r.n, 8u);
        this_fiber::yield();
      }
    });
  }
  // The reader sums the counter until every increment arrived: nothing lost, nothing doubled.
  std::uint64_t total = 0;
  while (total < kWriters * kEach) {
    std::uint64_t v = 0;
    auto r = ev.read_full(std::as_writable_bytes(std::span(&v, 1)));
    ASSERT_FALSE(r.err) << r.err.message();
    total += v;
  }
  wg.wait();
  EXPECT_EQ(total, kWriters * kEach);
  std::byte small[4];
  EXPECT_EQ(ev.read(small).err, std::errc::invalid_argument);  // eventfd reads are 8 bytes
  EXPECT_FALSE(ev.close());
}

FIBER_TEST(PollFd, ContextCancelEndsTheWait) {
  Pipe p = make_pipe();
  auto [ctx, cancel] = with_cancel(background());
  std::error_code got;
  WaitGroup wg;
  wg.go([&, ctx = ctx] {
    std::byte buf[8];
    auto r = p.r.read(ctx, buf);
    EXPECT_EQ(r.n, 0u);
    got = r.err;
  });
  wait_parked(1);
  cancel();
  wg.wait();
  EXPECT_EQ(got, errc::canceled);
  EXPECT_EQ(detail::netpoller()->pending(), 0);
  // The handle is still usable after a cancelled read: nothing was consumed or lost.
  ASSERT_FALSE(p.w.write_all(net::as_bytes("x")).err);
  std::byte buf[8];
  auto r = p.r.read(buf);
  EXPECT_EQ(r.n, 1u);
  // A context already done fails at once, even with data ready.
  ASSERT_FALSE(p.w.write_all(net::as_bytes("y")).err);
  EXPECT_EQ(p.r.read(ctx, buf).err, errc::canceled);
}

FIBER_TEST(PollFd, DeadlinesEndTheWait) {
  Pipe p = make_pipe();
  std::byte buf[8];
  {
    auto [ctx, cancel] = with_timeout(background(), 20ms);
    EXPECT_EQ(p.r.read(ctx, buf).err, errc::deadline_exceeded);
  }
  p.r.set_read_deadline(spindle::now() + 20ms);
  EXPECT_EQ(p.r.read(buf).err, net::errc::timeout);
  p.r.set_read_deadline(kNoDeadline);
  ASSERT_FALSE(p.w.write_all(net::as_bytes("ok")).err);
  EXPECT_EQ(p.r.read(buf).n, 2u);
}

FIBER_TEST(PollFd, CloseWakesAParkedReader) {
  const int before = baseline_fds();
  {
    Pipe p = make_pipe();
    std::error_code got;
    WaitGroup wg;
    wg.go([&] {
      std::byte buf[8];
      got = p.r.read(buf).err;
    });
    wait_parked(1);
    EXPECT_FALSE(p.r.close());
    wg.wait();
    EXPECT_EQ(got, net::errc::closed);
    EXPECT_FALSE(p.r.is_open());
    EXPECT_EQ(p.r.native_handle(), -1);
    std::byte buf[8];
    EXPECT_EQ(p.r.read(buf).err, net::errc::closed);  // later calls fail at once
    // The writer now sees a pipe with no reader: EPIPE, and no SIGPIPE ends the process.
    auto w = p.w.write(net::as_bytes("x"));
    EXPECT_EQ(w.err, std::errc::broken_pipe);
    EXPECT_FALSE(p.w.close());
  }
  EXPECT_EQ(open_fds(), before) << testing::fd_list();
}

FIBER_TEST(PollFd, EofWhenTheWriterGoes) {
  Pipe p = make_pipe();
  WaitGroup wg;
  std::error_code got;
  wg.go([&] {
    std::byte buf[8];
    got = p.r.read(buf).err;
  });
  wait_parked(1);
  EXPECT_FALSE(p.w.close());
  wg.wait();
  EXPECT_EQ(got, net::errc::eof);
}

// At one worker, a read that blocked its thread would stop everything: here other fibers run
// rounds of a ping-pong while the reader is parked, and one of them finally writes.
FIBER_TEST(PollFd, TheWorkerStaysFreeWhileAFiberWaits) {
  Pipe p = make_pipe();
  std::atomic<bool> done_reading{false};
  WaitGroup wg;
  wg.go([&] {
    std::byte buf[8];
    auto r = p.r.read(buf);
    EXPECT_EQ(r.n, 1u);
    done_reading = true;
  });
  wait_parked(1);
  constexpr int kRounds = 200;
  Chan<int> ping(0), pong(0);
  int rounds = 0;
  wg.go([&] {
    for (int i = 0; i < kRounds; ++i) {
      ping.send(i);
      (void)pong.recv();
    }
    ping.close();
  });
  while (auto v = ping.recv()) {
    EXPECT_FALSE(done_reading.load());
    ++rounds;
    pong.send(*v);
  }
  EXPECT_EQ(rounds, kRounds);
  EXPECT_FALSE(done_reading.load());
  ASSERT_FALSE(p.w.write_all(net::as_bytes("!")).err);
  wg.wait();
  EXPECT_TRUE(done_reading.load());
}

FIBER_TEST(PollFd, AFullPipeParksTheWriter) {
  Pipe p = make_pipe();
  ASSERT_GE(::fcntl(p.w.native_handle(), F_SETPIPE_SZ, 4096), 4096);
  const int cap = ::fcntl(p.w.native_handle(), F_GETPIPE_SZ);
  std::string data(static_cast<std::size_t>(cap) * 8, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 26);
  WaitGroup wg;
  net::IoResult wrote;
  wg.go([&] { wrote = p.w.write_all(net::as_bytes(data)); });
  wait_parked(1);  // the writer filled the pipe and parked
  std::string got;
  std::vector<std::byte> buf(1000);
  while (got.size() < data.size()) {
    auto r = p.r.read(buf);
    ASSERT_FALSE(r.err) << r.err.message();
    got += str(buf.data(), r.n);
  }
  wg.wait();
  EXPECT_FALSE(wrote.err);
  EXPECT_EQ(wrote.n, data.size());
  EXPECT_EQ(got, data);
}

FIBER_TEST(PollFd, InotifyEventsArriveThroughThePoller) {
  namespace fs = std::filesystem;
  char tmpl[] = "/tmp/spindle-fd-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const fs::path dir = tmpl;
  const int in = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  ASSERT_GE(in, 0);
  auto [f, err] = PollFd::adopt(in);
  ASSERT_FALSE(err) << err.message();
  ASSERT_GE(::inotify_add_watch(f.native_handle(), dir.c_str(), IN_CLOSE_WRITE), 0);
  std::string name;
  WaitGroup wg;
  wg.go([&] {
    alignas(inotify_event) std::byte buf[4096];
    auto r = f.read(buf);
    ASSERT_FALSE(r.err) << r.err.message();
    ASSERT_GE(r.n, sizeof(inotify_event));
    const auto* ev = reinterpret_cast<const inotify_event*>(buf);
    EXPECT_TRUE(ev->mask & IN_CLOSE_WRITE);
    name = ev->name;
  });
  wait_parked(1);
  blocking([&] {  // file I/O belongs on the blocking pool
    FILE* fp = std::fopen((dir / "a.txt").c_str(), "w");
    ASSERT_NE(fp, nullptr);
    std::fputs("x", fp);
    std::fclose(fp);
  });
  wg.wait();
  EXPECT_EQ(name, "a.txt");
  EXPECT_FALSE(f.close());
  blocking([&] { fs::remove_all(dir); });
}

FIBER_TEST(PollFd, RefusesWhatEpollCannotWatch) {
  const int before = baseline_fds();
  const int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);  // a regular file
  ASSERT_GE(fd, 0);
  auto [f, err] = PollFd::adopt(fd);
  EXPECT_EQ(err, std::errc::operation_not_permitted);
  EXPECT_FALSE(f.is_open());
  EXPECT_EQ(open_fds(), before) << testing::fd_list();  // adopt closed it
  EXPECT_EQ(PollFd::adopt(-1).err, std::errc::bad_file_descriptor);
  PollFd none;
  std::byte buf[1];
  EXPECT_EQ(none.read(buf).err, net::errc::closed);
  EXPECT_EQ(none.close(), net::errc::closed);
}

FIBER_TEST(PollFd, AdoptMakesABlockingDescriptorNonBlocking) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);  // blocking, no close-on-exec
  auto [r, rerr] = PollFd::adopt(fds[0]);
  auto [w, werr] = PollFd::adopt(fds[1]);
  ASSERT_FALSE(rerr);
  ASSERT_FALSE(werr);
  EXPECT_TRUE(::fcntl(r.native_handle(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(r.native_handle(), F_GETFD) & FD_CLOEXEC);
  WaitGroup wg;
  std::size_t got = 0;
  wg.go([&] {
    std::byte buf[8];
    got = r.read(buf).n;  // would hold the worker forever if the fd were still blocking
  });
  wait_parked(1);
  ASSERT_FALSE(w.write_all(net::as_bytes("abc")).err);
  wg.wait();
  EXPECT_EQ(got, 3u);
}

}  // namespace
}  // namespace spindle
