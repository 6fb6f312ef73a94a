// close() of a channel that many receivers wait on (runtime/src/chan/chan.cpp, close_locked):
// it claims and readies them a batch at a time and yields between batches, but only where
// nothing else could end a receiver still queued, and never inside a catch block.
// Whatever the batches, Go's close ends every blocked receiver at once: a receiver that also
// waits for something else (a context, another select case) is ended by the close, never by
// what the receivers woken before it do.

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

constexpr int kReceivers = 200;  // a few batches (64) and a partial one

// Parks kReceivers plain receivers on `ch`; each adds 1 to `woke` once the close ends its
// receive, then runs `then`. Returns once all of them are parked.
template <class Then>
void park_plain_receivers(const Chan<int>& ch, WaitGroup& wg, std::atomic<int>& woke, Then then) {
  for (int i = 0; i < kReceivers; ++i) {
    wg.go([ch, &woke, then] {
      if (!ch.recv().has_value()) woke.fetch_add(1);
      then();
    });
  }
  ASSERT_TRUE(testing::wait_parked_on("chan receive", kReceivers));
}

Options one_worker() {
  Options opts;
  opts.workers = 1;  // nothing else runs a woken receiver while the closer is on the worker
  return opts;
}

// With one worker, some receivers woken by the first batches have run by the time close()
// returns: it yielded between batches (not after the last, partial one, so not all of them).
// Every receiver is still ended exactly once.
TEST(ChanClose, YieldsBetweenFullBatches) {
  run(one_worker(), [] {
    Chan<int> ch(0);
    std::atomic<int> woke{0};
    WaitGroup wg;
    park_plain_receivers(ch, wg, woke, [] {});
    ch.close();
    const int ran_during_close = woke.load();
    wg.wait();
    EXPECT_GT(ran_during_close, 0);
    EXPECT_LT(ran_during_close, kReceivers);
    EXPECT_EQ(woke.load(), kReceivers);
  });
}

// In a catch block the closer must stay on its thread (libstdc++ keeps the handled exception
// per thread): close() then readies them all without letting any run, and `throw;` still
// rethrows this fiber's own exception.
TEST(ChanClose, InsideACatchBlockDoesNotSwitch) {
  run(one_worker(), [] {
    Chan<int> ch(0);
    std::atomic<int> woke{0};
    WaitGroup wg;
    park_plain_receivers(ch, wg, woke, [] {});
    int ran_during_close = -1;
    try {
      try {
        throw std::runtime_error("the closer's own");
      } catch (const std::runtime_error&) {
        ch.close();
        ran_during_close = woke.load();
        throw;
      }
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "the closer's own");
    }
    wg.wait();
    EXPECT_EQ(ran_during_close, 0);
    EXPECT_EQ(woke.load(), kReceivers);
  });
}

// A receiver queued behind kReceivers plain ones that also watches a context: the plain ones,
// once woken, cancel that context. The close must have ended it first ("closed"), at any worker
// count, as Go's close ends every blocked receiver at once.
FIBER_TEST(ChanClose, EndsAReceiverWithAContextBeforeTheOnesWokenFirstCanCancelIt) {
  Chan<int> ch(0);
  auto [ctx, cancel] = with_cancel(background());
  std::atomic<int> woke{0};
  WaitGroup wg;
  const CancelFunc* cancel_ctx = &cancel;
  park_plain_receivers(ch, wg, woke, [cancel_ctx] { (*cancel_ctx)(); });
  ChanStatus last = ChanStatus::ok;
  wg.go([&] { last = ch.recv(ctx).status; });
  ASSERT_TRUE(testing::wait_parked_on("chan receive", kReceivers + 1));
  ch.close();
  wg.wait();
  EXPECT_EQ(last, ChanStatus::closed);
  EXPECT_EQ(woke.load(), kReceivers);
}

// The same for a select queued behind them: the plain ones, once woken, offer a value on its
// other case. The close must have ended the select first: it reports the closed channel, and
// every offer finds nobody to take it.
FIBER_TEST(ChanClose, EndsASelectBeforeTheOnesWokenFirstCanCompleteItsOtherCase) {
  Chan<int> ch(0), other(0);
  std::atomic<int> woke{0}, offers_taken{0};
  WaitGroup wg;
  park_plain_receivers(ch, wg, woke, [other, &offers_taken] {
    if (other.try_send(1) == ChanStatus::ok) offers_taken.fetch_add(1);
  });
  int chosen = -1;
  bool ok = true;
  wg.go([&] {
    Select<2> sel;
    sel.recv(ch);
    sel.recv(other);
    chosen = sel.wait();
    ok = sel.recv_ok();
  });
  ASSERT_TRUE(testing::wait_parked_on("select", 1));
  ch.close();
  wg.wait();
  EXPECT_EQ(chosen, 0);
  EXPECT_FALSE(ok);
  EXPECT_EQ(offers_taken.load(), 0);
  EXPECT_EQ(woke.load(), kReceivers);
}

}  // namespace
}  // namespace spindle
