// Channel semantics, translated from Go's test/chan (nonblock.go, fifo.go, select3.go's close
// rules) and the Go specification: every capacity 0..100, FIFO, close, nil channels, timed
// forms, element types (move-only, no default constructor, destructor accounting).
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>

#include "support/fiber_test.hpp"
#include "support/polling.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

// Joins n fibers that each send once on `done`.
void join(const Chan<int>& done, int n) {
  for (int i = 0; i < n; ++i) ASSERT_TRUE(done.recv().has_value());
}

FIBER_TEST(Chan, LenCapAndNil) {
  Chan<int> nil;
  EXPECT_TRUE(nil.is_nil());
  EXPECT_FALSE(nil);
  EXPECT_EQ(nil.len(), 0u);
  EXPECT_EQ(nil.cap(), 0u);
  Chan<int> ch(3);
  EXPECT_FALSE(ch.is_nil());
  EXPECT_TRUE(ch);
  EXPECT_EQ(ch.cap(), 3u);
  ch.send(1);
  ch.send(2);
  EXPECT_EQ(ch.len(), 2u);
  auto copy = ch;
  EXPECT_EQ(copy, ch);
  EXPECT_NE(Chan<int>(3), ch);
  EXPECT_EQ(make_chan<int>(7).cap(), 7u);
  EXPECT_EQ(make_chan<int>().cap(), 0u);
}

// Go's nonblock.go: non-blocking operations at every capacity.
FIBER_TEST(Chan, NonBlockingEveryCapacity) {
  for (std::size_t cap = 0; cap <= 100; ++cap) {
    Chan<int> ch(cap);
    EXPECT_EQ(ch.try_recv().status, ChanStatus::would_block) << cap;
    for (std::size_t i = 0; i < cap; ++i) ASSERT_EQ(ch.try_send(int(i)), ChanStatus::ok) << cap;
    EXPECT_EQ(ch.len(), cap);
    int extra = -1;
    EXPECT_EQ(ch.try_send(extra), ChanStatus::would_block) << cap;
    for (std::size_t i = 0; i < cap; ++i) {
      auto r = ch.try_recv();
      ASSERT_EQ(r.status, ChanStatus::ok) << cap;
      ASSERT_EQ(*r, int(i)) << cap;
    }
    EXPECT_EQ(ch.try_recv().status, ChanStatus::would_block) << cap;
    EXPECT_EQ(ch.len(), 0u);
  }
}

// At every capacity: cap sends complete without a receiver, the next one blocks until a
// receive makes room, and values arrive in order.
FIBER_TEST(Chan, BlockingEveryCapacity) {
  for (std::size_t cap = 0; cap <= 100; ++cap) {
    Chan<int> ch(cap);
    Chan<int> done(1);
    go([ch, done, cap] {
      for (std::size_t i = 0; i <= cap; ++i) ch.send(int(i));
      done.send(1);
    });
    ASSERT_TRUE(testing::eventually([&] { return ch.len() == cap; }));
    // The producer cannot have finished: its (cap+1)-th send has no room and no receiver.
    EXPECT_EQ(done.try_recv().status, ChanStatus::would_block) << cap;
    for (std::size_t i = 0; i <= cap; ++i) ASSERT_EQ(*ch.recv(), int(i)) << cap;
    EXPECT_EQ(*done.recv(), 1);
  }
}

// Go's fifo.go AsynchFifo: a buffered channel is a FIFO.
FIBER_TEST(Chan, AsyncFifo) {
  constexpr int kN = 10;
  Chan<int> ch(kN);
  for (int i = 0; i < kN; ++i) ch.send(i);
  for (int i = 0; i < kN; ++i) EXPECT_EQ(*ch.recv(), i);
}

// Go's fifo.go SynchFifo: a daisy chain of fibers receives 0..N-1 in sequence.
FIBER_TEST(Chan, SyncFifo) {
  constexpr int kN = 10;
  Chan<int> ch(0);
  Chan<int> done(kN);
  Chan<int> in(0);
  Chan<int> start = in;
  for (int i = 0; i < kN; ++i) {
    Chan<int> out(0);
    go([ch, i, in, out, done] {
      (void)in.recv();
      EXPECT_EQ(*ch.recv(), i);
      out.send(1);
      done.send(1);
    });
    in = out;
  }
  start.send(0);
  for (int i = 0; i < kN; ++i) ch.send(i);
  (void)in.recv();
  join(done, kN);
}

// Blocked senders of one channel are served in arrival order. Each sender is queued (the
// dump shows it parked in its send) before the next one starts, so the order is certain at
// every worker count.
FIBER_TEST(Chan, FifoAmongBlockedSenders) {
  constexpr int kN = 20;
  Chan<int> ch(0);
  Chan<int> done(kN);
  for (int i = 0; i < kN; ++i) {
    go([ch, i, done] {
      ch.send(i);
      done.send(1);
    });
    ASSERT_TRUE(testing::wait_parked_on("chan send", i + 1));
  }
  std::vector<int> got;
  for (int i = 0; i < kN; ++i) got.push_back(*ch.recv());
  join(done, kN);
  for (int i = 0; i < kN; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
}

FIBER_TEST(Chan, DrainAfterClose) {
  for (std::size_t cap : {1u, 5u, 10u}) {
    Chan<std::string> ch(cap);
    for (std::size_t i = 0; i < cap; ++i) ch.send(std::to_string(i));
    ch.close();
    EXPECT_EQ(ch.len(), cap);
    for (std::size_t i = 0; i < cap; ++i) EXPECT_EQ(*ch.recv(), std::to_string(i));
    EXPECT_EQ(ch.recv(), std::nullopt);
    EXPECT_EQ(ch.recv(), std::nullopt);
    EXPECT_EQ(ch.try_recv().status, ChanStatus::closed);
    EXPECT_EQ(ch.recv_for(1h).status, ChanStatus::closed);
  }
}

FIBER_TEST(Chan, CloseMisuseThrowsWithGoWording) {
  Chan<int> ch(1);
  ch.close();
  try {
    ch.send(1);
    ADD_FAILURE() << "send on closed channel did not throw";
  } catch (const ClosedChannelError& e) {
    EXPECT_STREQ(e.what(), "send on closed channel");
  }
  EXPECT_THROW((void)ch.try_send(1), ClosedChannelError);
  EXPECT_THROW((void)ch.send_for(1, 1ms), ClosedChannelError);
  try {
    ch.close();
    ADD_FAILURE() << "close of closed channel did not throw";
  } catch (const ClosedChannelError& e) {
    EXPECT_STREQ(e.what(), "close of closed channel");
  }
  Chan<int> nil;
  try {
    nil.close();
    ADD_FAILURE() << "close of nil channel did not throw";
  } catch (const ChanError& e) {
    EXPECT_STREQ(e.what(), "close of nil channel");
  }
  static_assert(std::is_base_of_v<Panic, ChanError>);
}

// Senders blocked when the close happens fail too; every one gets a definite outcome. (More
// than close's batch of 64: it drops the lock between batches.)
FIBER_TEST(Chan, CloseFailsBlockedSenders) {
  constexpr int kSenders = 200;
  for (std::size_t cap : {0u, 1u, 4u}) {
    Chan<int> ch(cap);
    Chan<int> outcome(kSenders);
    std::atomic<int> started{0};
    for (int i = 0; i < kSenders; ++i) {
      go([ch, outcome, &started] {
        started.fetch_add(1);
        bool threw = false;
        try {
          ch.send(7);
        } catch (const ClosedChannelError&) {
          threw = true;
        }
        outcome.send(threw ? 1 : 0);
      });
    }
    ASSERT_TRUE(testing::eventually([&] { return started.load() == kSenders; }));
    ASSERT_TRUE(testing::eventually([&] { return ch.len() == cap; }));
    for (int k = 0; k < 20; ++k) this_fiber::yield();
    ch.close();
    int threw = 0;
    for (int i = 0; i < kSenders; ++i) threw += *outcome.recv();
    EXPECT_EQ(threw, kSenders - static_cast<int>(cap));  // the first cap sends were buffered
    std::size_t drained = 0;
    while (ch.recv()) ++drained;
    EXPECT_EQ(drained, cap);
  }
}

// Every blocked receiver wakes with "closed", plain and select receivers alike, across close's
// batches of 64 (it drops the lock between batches).
FIBER_TEST(Chan, CloseWakesBlockedReceivers) {
  constexpr int kReceivers = 200;
  Chan<int> ch(0);
  Chan<int> outcome(kReceivers);
  std::atomic<int> started{0};
  for (int i = 0; i < kReceivers; ++i) {
    go([ch, outcome, i, &started] {
      started.fetch_add(1);
      if (i % 2 == 0) {
        outcome.send(ch.recv().has_value() ? 1 : 0);
        return;
      }
      Chan<int> never(0);
      Select<2> sel;
      sel.recv(ch);
      sel.recv(never);
      outcome.send(sel.wait() == 0 && !sel.recv_ok() ? 0 : 1);
    });
  }
  ASSERT_TRUE(testing::eventually([&] { return started.load() == kReceivers; }));
  for (int k = 0; k < 50; ++k) this_fiber::yield();
  ch.close();
  int woken_by_close = 0;
  for (int i = 0; i < kReceivers; ++i) woken_by_close += *outcome.recv() == 0;
  EXPECT_EQ(woken_by_close, kReceivers);
}

FIBER_TEST(Chan, NilChannelNeverReady) {
  Chan<int> nil;
  int v = 1;
  EXPECT_EQ(nil.try_send(v), ChanStatus::would_block);
  EXPECT_EQ(nil.try_recv().status, ChanStatus::would_block);
  const auto t0 = Clock::now();
  EXPECT_EQ(nil.recv_for(2ms).status, ChanStatus::timeout);
  EXPECT_EQ(nil.send_for(v, 2ms), ChanStatus::timeout);
  EXPECT_GE(Clock::now() - t0, 4ms);
  EXPECT_EQ(v, 1);
}

FIBER_TEST(Chan, TimedForms) {
  Chan<std::unique_ptr<int>> ch(1);
  auto t0 = Clock::now();
  EXPECT_EQ(ch.recv_for(3ms).status, ChanStatus::timeout);
  EXPECT_GE(Clock::now() - t0, 3ms);
  EXPECT_EQ(ch.send_for(std::make_unique<int>(1), 1h), ChanStatus::ok);
  auto p = std::make_unique<int>(2);
  t0 = Clock::now();
  EXPECT_EQ(ch.send_for(p, 3ms), ChanStatus::timeout);
  EXPECT_GE(Clock::now() - t0, 3ms);
  ASSERT_NE(p, nullptr);  // not consumed on failure
  EXPECT_EQ(*p, 2);
  // A deadline already past still completes a ready operation (readiness is checked first).
  auto r = ch.recv_until(Clock::now() - 1s);
  ASSERT_TRUE(r);
  EXPECT_EQ(**r, 1);
  EXPECT_EQ(ch.send_until(p, Clock::now() - 1s), ChanStatus::ok);
  EXPECT_EQ(p, nullptr);
  // A timed receive that is satisfied by a sender arriving later.
  go([ch] { ch.send(std::make_unique<int>(3)); });
  (void)ch.recv();
  auto later = ch.recv_for(1h);
  ASSERT_TRUE(later);
  EXPECT_EQ(**later, 3);
}

FIBER_TEST(Chan, MoveOnlyElements) {
  for (std::size_t cap : {0u, 3u}) {
    Chan<std::unique_ptr<int>> ch(cap);
    Chan<int> done(1);
    go([ch, done] {
      for (int i = 0; i < 10; ++i) ch.send(std::make_unique<int>(i));
      ch.close();
      done.send(1);
    });
    int i = 0;
    for (std::unique_ptr<int> p : ch) {
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(*p, i++);
    }
    EXPECT_EQ(i, 10);
    (void)done.recv();
    auto p = std::make_unique<int>(5);
    if (cap == 0) {
      EXPECT_EQ(Chan<std::unique_ptr<int>>(0).try_send(p), ChanStatus::would_block);
      EXPECT_NE(p, nullptr);
    }
  }
}

struct NoDefault {
  explicit NoDefault(int x) : v(x) {}
  int v;
};

FIBER_TEST(Chan, NonDefaultConstructibleElements) {
  Chan<NoDefault> ch(0);
  go([ch] { ch.send(NoDefault(42)); });
  auto v = ch.recv();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->v, 42);
}

struct Counted {
  static inline std::atomic<int> live{0};
  explicit Counted(int x) : v(x) { live.fetch_add(1); }
  Counted(Counted&& o) noexcept : v(o.v) { live.fetch_add(1); }
  Counted(const Counted& o) : v(o.v) { live.fetch_add(1); }
  ~Counted() { live.fetch_sub(1); }
  int v;
};

FIBER_TEST(Chan, ElementsDestroyedExactlyOnce) {
  Counted::live = 0;
  {
    Chan<Counted> ch(10);
    for (int i = 0; i < 6; ++i) ch.send(Counted(i));
    EXPECT_EQ(Counted::live.load(), 6);
    EXPECT_EQ(ch.recv()->v, 0);
    EXPECT_EQ(Counted::live.load(), 5);
    ch.close();
  }  // the buffered ones go with the channel
  EXPECT_EQ(Counted::live.load(), 0);
  {
    Chan<Counted> ch(0);
    Chan<int> done(1);
    go([ch, done] {
      ch.send(Counted(1));
      done.send(1);
    });
    EXPECT_EQ(ch.recv()->v, 1);
    (void)done.recv();
  }
  EXPECT_EQ(Counted::live.load(), 0);
}

FIBER_TEST(Chan, SenderAndReceiverEnds) {
  Chan<int> ch(4);
  Sender<int> tx = ch;
  Receiver<int> rx = ch;
  EXPECT_EQ(rx.cap(), 4u);
  EXPECT_EQ(tx, Sender<int>(ch));
  EXPECT_EQ(rx, Receiver<int>(ch));
  EXPECT_TRUE(Receiver<int>().is_nil());
  auto produce = [](Sender<int> out) {
    for (int i = 0; i < 3; ++i) out.send(i);
    out.close();
  };
  go(produce, ch);
  int sum = 0;
  for (int v : rx) sum += v;
  EXPECT_EQ(sum, 3);
  EXPECT_EQ(rx.recv(), std::nullopt);
}

// A plain thread outside the runtime blocks on a channel (futex), and a fiber completes it.
FIBER_TEST(Chan, PlainThreadPartner) {
  Chan<int> ch(0);
  Chan<int> back(0);
  std::thread t([ch, back] {
    ch.send(1);
    auto v = back.recv();
    EXPECT_EQ(v, 2);
  });
  EXPECT_EQ(*ch.recv(), 1);
  back.send(2);
  t.join();
}

}  // namespace
}  // namespace spindle
