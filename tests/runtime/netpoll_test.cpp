// The netpoller: fibers parked on descriptors wake on readiness, on close, at deadlines; a
// reused descriptor never receives a stale wake-up. (Internal API: the TCP layer builds on it.)
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <vector>

#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "net/poller.hpp"
#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using detail::PollMode;
using detail::PollResult;

struct SocketPair {
  int fd[2];
  SocketPair() {
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
  }
  ~SocketPair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
};

// Reads one byte, parking on the poller while the socket has none.
int read_byte(detail::PollDesc* d) {
  for (;;) {
    char c;
    const ssize_t n = ::read(d->fd, &c, 1);
    const int err = errno;  // captured at once: a park below may resume on another thread
    if (n == 1) return c;
    if (n == 0) return -1;
    if (err != EAGAIN) return -2;
    if (detail::netpoller()->wait(d, PollMode::read) != PollResult::ready) return -3;
  }
}

FIBER_TEST(Netpoll, ReaderWakesOnEveryWrite) {
  SocketPair sp;
  auto* np = detail::netpoller();
  detail::PollDesc* d = np->open(sp.fd[0]);
  constexpr int kBytes = 2000;
  std::atomic<int> sum{0};
  WaitGroup wg;
  wg.go([&] {
    for (int i = 0; i < kBytes; ++i) sum += read_byte(d);
  });
  for (int i = 0; i < kBytes; ++i) {
    const char c = static_cast<char>(i % 100);
    while (::write(sp.fd[1], &c, 1) != 1) this_fiber::yield();  // buffer full: let it drain
    if (i % 7 == 0) this_fiber::yield();
  }
  wg.wait();
  int want = 0;
  for (int i = 0; i < kBytes; ++i) want += i % 100;
  EXPECT_EQ(sum.load(), want);
  np->close(d);
}

FIBER_TEST(Netpoll, CloseWakesTheParkedReader) {
  SocketPair sp;
  auto* np = detail::netpoller();
  detail::PollDesc* d = np->open(sp.fd[0]);
  std::atomic<int> result{0};
  WaitGroup parked, done;
  parked.add(1);
  done.go([&] {
    parked.done();
    result = static_cast<int>(np->wait(d, PollMode::read)) + 1;
  });
  parked.wait();
  while (np->pending() == 0) this_fiber::yield();  // until it really waits on the descriptor
  np->close(d);
  done.wait();
  EXPECT_EQ(result.load(), static_cast<int>(PollResult::closed) + 1);
}

FIBER_TEST(Netpoll, DeadlineEndsTheWait) {
  SocketPair sp;
  auto* np = detail::netpoller();
  detail::PollDesc* d = np->open(sp.fd[0]);
  EXPECT_EQ(np->wait(d, PollMode::read, Clock::now() + std::chrono::milliseconds(5)), PollResult::timeout);
  // Writable at once: a fresh socket's write readiness arrives as the first edge.
  EXPECT_EQ(np->wait(d, PollMode::write, Clock::now() + std::chrono::seconds(10)), PollResult::ready);
  np->close(d);
}

FIBER_TEST(Netpoll, ReusedDescriptorGetsNoStaleWakeup) {
  auto* np = detail::netpoller();
  for (int round = 0; round < 200; ++round) {
    SocketPair a;
    detail::PollDesc* d = np->open(a.fd[0]);
    const char c = 'x';
    EXPECT_EQ(::write(a.fd[1], &c, 1), 1);  // an event for the old registration is in flight
    np->close(d);
    SocketPair b;  // likely reuses the same fd numbers and descriptor slot
    detail::PollDesc* e = np->open(b.fd[0]);
    EXPECT_EQ(np->wait(e, PollMode::read, Clock::now() + std::chrono::milliseconds(1)), PollResult::timeout);
    np->close(e);
  }
}

// Fibers the netpoller readies run in the order their descriptors became ready: a server's
// oldest ready connection is served first (with the worker's LIFO ring they ran newest first,
// and under load the oldest waited for the fairness pick: a p99 several times Go's).
FIBER_TEST_AT(Netpoll, ReadiedFibersRunInReadinessOrder, 1) {
  constexpr int kFibers = 16;
  auto* np = detail::netpoller();
  std::vector<std::unique_ptr<SocketPair>> pairs;
  std::vector<detail::PollDesc*> descs;
  for (int i = 0; i < kFibers; ++i) {
    pairs.push_back(std::make_unique<SocketPair>());
    descs.push_back(np->open(pairs.back()->fd[0]));
  }
  std::vector<int> order;
  WaitGroup wg;
  for (int i = 0; i < kFibers; ++i) {
    wg.go([&, i] {
      EXPECT_EQ(read_byte(descs[static_cast<std::size_t>(i)]), 'x');
      order.push_back(i);  // one worker: no two fibers run at once
    });
  }
  while (np->pending() < kFibers) this_fiber::yield();  // all parked
  const char c = 'x';
  for (int i = 0; i < kFibers; ++i) ASSERT_EQ(::write(pairs[static_cast<std::size_t>(i)]->fd[1], &c, 1), 1);
  wg.wait();  // parks: the worker polls and finds all of them ready, in write order
  std::vector<int> want(kFibers);
  for (int i = 0; i < kFibers; ++i) want[static_cast<std::size_t>(i)] = i;
  EXPECT_EQ(order, want);
  for (auto* d : descs) np->close(d);
}

}  // namespace
}  // namespace spindle
