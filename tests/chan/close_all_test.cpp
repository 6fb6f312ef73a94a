// chan_close_all: the closes a wide context cancel makes at once (runtime/src/chan/chan.cpp).
// It readies woken receivers in batches that span channels, so these tests check that every
// waiter is readied exactly once whatever the batch boundaries, and that a failing close still
// readies what it has claimed.

#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/synctest.hpp>
#include <spindle/waitgroup.hpp>

#include "chan/chan_internal.hpp"

namespace spindle {
namespace {

// Parks `n` receivers on `ch` (every other one in a select with a never-ready second case);
// each adds 1 to `closed_seen` when it wakes to "closed".
void park_receivers(const Chan<int>& ch, int n, WaitGroup& wg, std::atomic<int>& closed_seen) {
  for (int i = 0; i < n; ++i) {
    wg.go([ch, i, &closed_seen] {
      if (i % 2 == 0) {
        if (!ch.recv().has_value()) ++closed_seen;
        return;
      }
      Chan<int> never(0);
      Select<2> sel;
      sel.recv(ch);
      sel.recv(never);
      if (sel.wait() == 0 && !sel.recv_ok()) ++closed_seen;
    });
  }
}

// Channels with 0, 1, 3, 64, 65 and 150 receivers, and one with a blocked sender: the batch of
// 64 fills inside a channel, at a channel's end and across channels.
TEST(ChanCloseAll, WakesEveryWaiterOfEveryChannelOnce) {
  synctest::run([] {
    constexpr std::array<int, 6> kReceivers = {0, 1, 3, 64, 65, 150};
    std::vector<Chan<int>> chans;
    std::atomic<int> closed_seen{0};
    WaitGroup wg;
    for (int n : kReceivers) {
      chans.emplace_back(0);
      park_receivers(chans.back(), n, wg, closed_seen);
    }
    Chan<int> send_side(0);
    std::atomic<bool> send_failed{false};
    wg.go([send_side, &send_failed] {
      try {
        send_side.send(1);
      } catch (const ClosedChannelError&) {
        send_failed = true;
      }
    });
    synctest::wait();  // every receiver and the sender parked

    std::vector<detail::ChanCore*> cores;
    for (const auto& ch : chans) cores.push_back(ch.detail_core());
    cores.push_back(send_side.detail_core());
    detail::chan_close_all(cores.data(), cores.size());
    wg.wait();

    int total = 0;
    for (int n : kReceivers) total += n;
    EXPECT_EQ(closed_seen.load(), total);
    EXPECT_TRUE(send_failed.load());
    for (const auto& ch : chans) EXPECT_FALSE(ch.recv().has_value());  // closed, and stays so
  });
}

// A channel already closed stops the closes there, with Go's message; the receivers claimed
// from the channels before it (fewer than a batch, not yet readied) still wake, and the
// channels after it stay open.
TEST(ChanCloseAll, AClosedChannelThrowsAfterReadyingWhatWasClaimed) {
  synctest::run([] {
    Chan<int> first(0), second(0), already_closed(0), after(1);
    already_closed.close();
    std::atomic<int> closed_seen{0};
    WaitGroup wg;
    park_receivers(first, 5, wg, closed_seen);
    park_receivers(second, 7, wg, closed_seen);
    synctest::wait();

    std::array<detail::ChanCore*, 4> cores = {first.detail_core(), second.detail_core(),
                                              already_closed.detail_core(), after.detail_core()};
    try {
      detail::chan_close_all(cores.data(), cores.size());
      ADD_FAILURE() << "closing a closed channel did not throw";
    } catch (const ClosedChannelError& e) {
      EXPECT_STREQ(e.what(), "close of closed channel");
    }
    wg.wait();  // a claimed receiver left unreadied would never wake: a deadlock report
    EXPECT_EQ(closed_seen.load(), 12);
    EXPECT_EQ(after.try_send(1), ChanStatus::ok);  // still open
  });
}

// A long queue whose nodes carry prefetch hints to the node WaitQueue::kAhead places behind
// them: when some of those nodes withdraw (their select won elsewhere) and their fibers finish,
// the hints left in the queue point at dead frames. The close must still wake every remaining
// receiver exactly once, and the withdrawn ones never.
TEST(ChanCloseAll, WithdrawnNodesInALongQueueLeaveOnlyHints) {
  synctest::run([] {
    constexpr int kReceivers = 100;
    Chan<int> ch(0), other(0);
    std::atomic<int> closed_seen{0}, got_other{0};
    WaitGroup wg;
    for (int i = 0; i < kReceivers; ++i) {
      wg.go([ch, other, i, &closed_seen, &got_other] {
        if (i % 3 != 0) {
          if (!ch.recv().has_value()) ++closed_seen;
          return;
        }
        Select<2> sel;
        sel.recv(ch);
        sel.recv(other);
        if (sel.wait() == 1) ++got_other;
        else if (!sel.recv_ok()) ++closed_seen;
      });
    }
    synctest::wait();
    constexpr int kWithdrawn = (kReceivers + 2) / 3;
    for (int i = 0; i < kWithdrawn; ++i) other.send(i);
    synctest::wait();  // the select receivers took `other` and finished
    EXPECT_EQ(got_other.load(), kWithdrawn);

    detail::ChanCore* core = ch.detail_core();
    detail::chan_close_all(&core, 1);
    wg.wait();
    EXPECT_EQ(closed_seen.load(), kReceivers - kWithdrawn);
  });
}

// A close queues the receivers it wakes on the closing worker's ring, a batch at a time
// (Waiter::ready_all). With that ring already full of fibers that have not run yet, the batches
// overflow it and its older half spills to the global queue: every fiber still runs once.
TEST(ChanCloseAll, WokenReceiversOverflowingAFullRunQueueAllRunOnce) {
  Options opts;
  opts.workers = 1;  // nothing runs the queued fibers before the close
  run(opts, [] {
    constexpr int kReceivers = 300, kQueued = 300;  // each more than a ring holds (256)
    Chan<int> ch(0);
    std::atomic<int> closed_seen{0}, queued_ran{0};
    WaitGroup parked, wg;
    parked.add(kReceivers);
    for (int i = 0; i < kReceivers; ++i) {
      wg.go([ch, &parked, &closed_seen] {
        parked.done();
        if (!ch.recv().has_value()) ++closed_seen;
      });
    }
    parked.wait();  // one worker: each receiver ran until it parked before the next started
    for (int i = 0; i < kQueued; ++i) wg.go([&queued_ran] { ++queued_ran; });
    EXPECT_EQ(queued_ran.load(), 0);
    ch.close();
    wg.wait();
    EXPECT_EQ(closed_seen.load(), kReceivers);
    EXPECT_EQ(queued_ran.load(), kQueued);
  });
}

}  // namespace
}  // namespace spindle
