// Context overloads of channel operations: Chan::send(ctx, v) and Chan::recv(ctx). A value is
// never both delivered and reported cancelled: racing cancellation against transfers thousands
// of times, every value a sender reports sent is received exactly once, and no other.
#include <atomic>
#include <memory>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;
using spindle::testing::canceled;
using spindle::testing::deadline_exceeded;
using spindle::testing::eventually;

namespace spindle {
namespace {

FIBER_TEST(ChanCtx, SendAndRecv) {
  Chan<int> ch(1);
  EXPECT_FALSE(ch.send(background(), 1));
  auto r = ch.recv(background());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 1);
  ch.close();
  EXPECT_EQ(ch.recv(background()).status, ChanStatus::closed);
  EXPECT_THROW((void)ch.send(background(), 2), ClosedChannelError);
}

FIBER_TEST(ChanCtx, DeadlineAndCancel) {
  Chan<std::unique_ptr<int>> ch(0);
  {
    auto [ctx, cancel] = with_timeout(background(), 2ms);
    auto v = std::make_unique<int>(7);
    EXPECT_EQ(ch.send(ctx, v), deadline_exceeded());  // nobody receives
    ASSERT_NE(v, nullptr);                            // the value was not moved from
    EXPECT_EQ(*v, 7);
    auto r = ch.recv(ctx);  // already done: fails at once
    EXPECT_EQ(r.status, ChanStatus::canceled);
  }
  {
    auto [ctx, cancel] = with_cancel(background());
    WaitGroup wg;
    ChanStatus got = ChanStatus::ok;
    wg.go([&, ctx = ctx] { got = ch.recv(ctx).status; });
    ASSERT_TRUE(eventually([&] { return detail::context_waiter_count(ctx) == 1; }));
    cancel();
    wg.wait();
    EXPECT_EQ(got, ChanStatus::canceled);
    EXPECT_EQ(detail::context_waiter_count(ctx), 0u);
  }
  {
    // A done context fails even when the operation could complete.
    Chan<int> full(1);
    auto [ctx, cancel] = with_cancel(background());
    EXPECT_FALSE(full.send(ctx, 1));
    cancel();
    EXPECT_EQ(full.recv(ctx).status, ChanStatus::canceled);
    EXPECT_EQ(full.len(), 1u);  // still there
  }
  {
    // The nil channel waits for the context.
    auto [ctx, cancel] = with_timeout(background(), 1ms);
    EXPECT_EQ(Chan<int>().recv(ctx).status, ChanStatus::canceled);
    EXPECT_EQ(Chan<int>().send(ctx, 1), deadline_exceeded());
  }
}

// Producer and consumer both context-aware; one of them (alternating) cancels the shared
// context after a varying number of transfers, while the other is in, or about to enter, its
// next operation (on another worker at 2 and 4 workers): exact accounting of every value.
// (The canceller is one of the pair rather than a third fiber or a plain thread: see the
// report on run_next fairness at 1 worker and on plain-thread wakers in forced-migration mode.)
void race_transfers(std::size_t capacity) {
  constexpr int kRounds = 1000;
  long sent_total = 0, received_total = 0;
  for (int round = 0; round < kRounds; ++round) {
    Chan<int> ch(capacity);
    CancelableContext r = with_cancel(background());
    const bool producer_cancels = round % 2 == 0;
    const int cancel_after = round % 13;
    WaitGroup wg;
    long sent = 0, sum_sent = 0, received = 0, sum_received = 0;
    wg.go([&, ctx = r.ctx] {
      for (int i = 1; i <= 64; ++i) {
        if (producer_cancels && i == cancel_after + 1) r.cancel();
        if (ch.send(ctx, i)) return;  // cancelled: i was not delivered
        ++sent;
        sum_sent += i;
      }
    });
    wg.go([&, ctx = r.ctx] {
      for (int n = 0;; ++n) {
        if (!producer_cancels && n == cancel_after) r.cancel();
        auto v = ch.recv(ctx);
        if (!v.ok()) return;
        ++received;
        sum_received += *v;
      }
    });
    wg.wait();
    EXPECT_TRUE(r.ctx.err()) << "round " << round;
    // What is still buffered was sent but not received.
    while (auto v = ch.try_recv()) {
      ++received;
      sum_received += *v;
    }
    EXPECT_EQ(sent, received) << "round " << round;
    EXPECT_EQ(sum_sent, sum_received) << "round " << round;
    sent_total += sent;
    received_total += received;
  }
  EXPECT_EQ(sent_total, received_total);
  EXPECT_GT(sent_total, 0);
}

FIBER_TEST(ChanCtx, CancelRacesUnbufferedTransfers) { race_transfers(0); }
FIBER_TEST(ChanCtx, CancelRacesBufferedTransfers) { race_transfers(3); }

// A plain receiver against a context-aware sender (and the reverse), one value per round.
FIBER_TEST(ChanCtx, CancelRacesOneHandOff) {
  constexpr int kRounds = 3000;
  int delivered = 0, cancelled = 0;
  for (int round = 0; round < kRounds; ++round) {
    Chan<int> ch(0);
    CancelableContext r = with_cancel(background());
    WaitGroup wg;
    bool got = false;
    wg.go([&] {
      auto v = ch.recv_for(1h);  // ends when the sender closes after a failed send
      got = v.ok();
    });
    wg.go([&r] { r.cancel(); });
    const std::error_code ec = ch.send(r.ctx, round);
    if (ec) {
      ++cancelled;
      ch.close();
    }
    wg.wait();
    if (!ec) ++delivered;
    EXPECT_EQ(got, !ec) << "round " << round;
  }
  EXPECT_EQ(delivered + cancelled, kRounds);
}

// select over ctx.done() and a channel, the Go idiom.
FIBER_TEST(ChanCtx, SelectOnDone) {
  auto [ctx, cancel] = with_timeout(background(), 2ms);
  Chan<int> never(0);
  std::error_code why;
  const int chosen = select(case_recv(never), case_recv(ctx.done(), [&] { why = ctx.err(); }));
  EXPECT_EQ(chosen, 1);
  EXPECT_EQ(why, deadline_exceeded());
}

}  // namespace
}  // namespace spindle
