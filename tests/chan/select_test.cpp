// select, translated from Go's test/chan/select*.go shapes and the specification: non-blocking
// selects never take default while a case is ready; uniform choice among ready cases; the same
// channel in several cases; send values moved only when chosen; nil cases never chosen; closed
// channels; timeouts; the context-aware (Interrupt) forms.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

FIBER_TEST(Select, HandlersAndIndex) {
  Chan<int> a(1), b(1);
  a.send(5);
  int got = 0;
  const int idx = select(case_recv(a, [&](std::optional<int> v) { got = *v; }),
                         case_recv(b, [&](std::optional<int>) { ADD_FAILURE(); }));
  EXPECT_EQ(idx, 0);
  EXPECT_EQ(got, 5);
  // Handlers returning a value: select returns it.
  b.send(7);
  const std::string s = select(case_recv(a, [](std::optional<int>) { return std::string("a"); }),
                               case_recv(b, [](std::optional<int> v) { return std::to_string(*v); }));
  EXPECT_EQ(s, "7");
  // A handler may ignore the value; a case may have no handler.
  a.send(1);
  bool ran = false;
  EXPECT_EQ(select(case_recv(b), case_recv(a, [&] { ran = true; })), 1);
  EXPECT_TRUE(ran);
}

// Go: a select with default must not take default while some case can proceed.
FIBER_TEST(Select, NonBlockingNeverTakesDefaultWhenReady) {
  for (std::size_t cap = 1; cap <= 100; cap += 11) {
    Chan<int> c(cap);
    for (int i = 0; i < 1000; ++i) {
      // Ready send (room in the buffer).
      int v = i;
      ASSERT_EQ(select(case_send(c, v), case_default()), 0);
      // Ready receive (a buffered value).
      std::optional<int> got;
      ASSERT_EQ(select(case_recv(c, [&](std::optional<int> x) { got = x; }), case_default()), 0);
      ASSERT_EQ(got, i);
      // Nothing ready: default.
      ASSERT_EQ(select(case_recv(c), case_default()), 1);
    }
  }
  // A closed channel's receive case is always ready.
  Chan<int> closed(0);
  closed.close();
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(select(case_default(), case_recv(closed)), 1);
  // An unbuffered channel with a parked receiver is ready for a send.
  Chan<int> unbuf(0);
  Chan<int> done(1);
  go([unbuf, done] {
    for (int i = 0; i < 100; ++i) (void)unbuf.recv();
    done.send(1);
  });
  for (int i = 0; i < 100; ++i) {
    for (;;) {  // wait for the receiver to park again, then the send case must win
      int v = i;
      if (select(case_send(unbuf, v), case_default()) == 0) break;
      this_fiber::yield();
    }
  }
  (void)done.recv();
}

// Uniform choice: two always-ready cases, each chosen 45-55% of 20,000 times.
FIBER_TEST(Select, FairAmongReadyCases) {
  Chan<int> a(0), b(0);
  a.close();
  b.close();
  int counts[2] = {0, 0};
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) ++counts[select(case_recv(a), case_recv(b))];
  EXPECT_GE(counts[0], kN * 45 / 100);
  EXPECT_LE(counts[0], kN * 55 / 100);
  // Same with buffered channels and the index form.
  Chan<int> x(1), y(1);
  int idx_counts[2] = {0, 0};
  for (int i = 0; i < kN; ++i) {
    if (x.len() == 0) x.send(1);
    if (y.len() == 0) y.send(2);
    Select<2> sel;
    sel.recv(x);
    sel.recv(y);
    ++idx_counts[sel.wait()];
  }
  EXPECT_GE(idx_counts[0], kN * 45 / 100);
  EXPECT_LE(idx_counts[0], kN * 55 / 100);
}

// select tries buffered cases that look ready by their counts before locking every channel
// (select.cpp, 1b). That shortcut must not bias the choice: a closed, drained buffered channel is
// as ready as one holding a value, and a ready unbuffered case competes on equal terms.
FIBER_TEST(Select, BufferedShortcutKeepsTheChoiceUniform) {
  constexpr int kN = 20000;
  auto share_of_first = [](auto make_ready, Chan<int> first, Chan<int> second) {
    int first_count = 0;
    for (int i = 0; i < kN; ++i) {
      make_ready();
      Select<2> sel;
      sel.recv(first);
      sel.recv(second);
      first_count += sel.wait() == 0;
    }
    return first_count;
  };
  Chan<int> value(1), closed_buffered(1), closed_unbuffered(0);
  closed_buffered.close();
  closed_unbuffered.close();
  auto refill = [&] {
    if (value.len() == 0) value.send(1);
  };
  const int vs_closed_buffered = share_of_first(refill, value, closed_buffered);
  EXPECT_GE(vs_closed_buffered, kN * 45 / 100);
  EXPECT_LE(vs_closed_buffered, kN * 55 / 100);
  const int vs_unbuffered = share_of_first(refill, value, closed_unbuffered);
  EXPECT_GE(vs_unbuffered, kN * 45 / 100);
  EXPECT_LE(vs_unbuffered, kN * 55 / 100);
  // A send case on a closed buffered channel throws, even with room in its buffer.
  int v = 1;
  Chan<int> closed_with_room(4);
  closed_with_room.close();
  EXPECT_THROW(select(case_send(closed_with_room, v)), ClosedChannelError);
  EXPECT_THROW(select(case_send(closed_with_room, v), case_default()), ClosedChannelError);
}

// The same channel in several cases: exactly one case consumes each value, and no
// registration is left behind (a later try_send finds no receiver).
FIBER_TEST(Select, SameChannelInSeveralCases) {
  Chan<int> ch(0);
  Chan<int> done(1);
  constexpr int kN = 500;
  go([ch, done] {
    int total = 0;
    for (int i = 0; i < kN; ++i) {
      int seen = 0;
      select(case_recv(ch, [&](std::optional<int> v) { seen += *v; }),
             case_recv(ch, [&](std::optional<int> v) { seen += *v; }),
             case_recv(ch, [&](std::optional<int> v) { seen += *v; }));
      total += seen;
    }
    done.send(total);
  });
  for (int i = 0; i < kN; ++i) ch.send(1);
  EXPECT_EQ(*done.recv(), kN);
  int v = 1;
  EXPECT_EQ(ch.try_send(v), ChanStatus::would_block);
  // A select sending and receiving on one unbuffered channel cannot match itself; a partner
  // completes one of the two cases.
  Chan<int> both(0);
  go([both, done] {
    int out = 9;
    std::optional<int> in;
    Select<2> sel;
    const int r = sel.recv(both, &in);
    sel.send(both, out);
    const int i = sel.wait();
    done.send(i == r ? *in : -1);
  });
  both.send(4);  // completes the receive case
  EXPECT_EQ(*done.recv(), 4);
  go([both, done] {
    int out = 9;
    std::optional<int> in;
    Select<2> sel;
    sel.recv(both, &in);
    const int s = sel.send(both, out);
    done.send(sel.wait() == s ? 1 : 0);
  });
  EXPECT_EQ(*both.recv(), 9);  // completes the send case
  EXPECT_EQ(*done.recv(), 1);
}

// A send case's value is moved from only when that case is chosen.
FIBER_TEST(Select, SendValueMovedOnlyWhenChosen) {
  Chan<std::unique_ptr<int>> full(1);
  full.send(std::make_unique<int>(0));
  Chan<int> ready(1);
  for (int i = 0; i < 200; ++i) {
    ready.send(i);
    auto p = std::make_unique<int>(42);
    EXPECT_EQ(select(case_send(full, std::move(p)), case_recv(ready)), 1);
    ASSERT_NE(p, nullptr);
    auto q = std::make_unique<int>(43);
    EXPECT_EQ(select(case_send(full, q), case_default()), 1);
    ASSERT_NE(q, nullptr);
    Select<2> sel;
    sel.send(full, q);
    sel.default_case();
    EXPECT_EQ(sel.wait(), 1);
    ASSERT_NE(q, nullptr);
  }
  (void)full.recv();
  auto p = std::make_unique<int>(5);
  EXPECT_EQ(select(case_send(full, std::move(p)), case_default()), 0);
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(**full.recv(), 5);
  // A value converted on entry (const char* into std::string) works too.
  Chan<std::string> s(1);
  EXPECT_EQ(select(case_send(s, "hello")), 0);
  EXPECT_EQ(*s.recv(), "hello");
}

// A blocked select with a send case: the value is moved only if a receiver takes it.
FIBER_TEST(Select, BlockedSendCaseMovedOnlyWhenTaken) {
  Chan<std::unique_ptr<int>> out(0);
  Chan<int> other(0);
  Chan<int> done(1);
  go([out, other, done] {
    auto p = std::make_unique<int>(1);
    const int i = select(case_send(out, p), case_recv(other));
    done.send(i == 1 && p != nullptr ? 1 : 0);
  });
  other.send(0);
  EXPECT_EQ(*done.recv(), 1);
}

FIBER_TEST(Select, NilCasesNeverChosen) {
  Chan<int> nil;
  Chan<int> ready(1);
  int v = 1;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(select(case_recv(nil), case_send(nil, v), case_default()), 2);
    ready.send(i);
    ASSERT_EQ(select(case_recv(nil), case_send(nil, v), case_recv(ready)), 2);
  }
  EXPECT_EQ(v, 1);
  // Only nil cases and a timeout: the timeout.
  EXPECT_EQ(select(case_recv(nil), case_timeout(1ms)), 1);
  // The Go "disable a case by setting it to nil" idiom.
  Chan<int> a(0);
  a.close();
  Chan<int> x = a;
  int closed_seen = 0;
  for (int i = 0; i < 10; ++i) {
    const int idx = select(case_recv(x, [&](std::optional<int> r) {
                             if (!r) {
                               ++closed_seen;
                               x = Chan<int>();
                             }
                           }),
                           case_default());
    if (idx == 1) break;
  }
  EXPECT_EQ(closed_seen, 1);
}

FIBER_TEST(Select, ClosedChannels) {
  Chan<int> c(0);
  c.close();
  bool saw_nullopt = false;
  select(case_recv(c, [&](std::optional<int> v) { saw_nullopt = !v.has_value(); }));
  EXPECT_TRUE(saw_nullopt);
  int v = 1;
  EXPECT_THROW(select(case_send(c, v)), ClosedChannelError);
  EXPECT_THROW(select(case_send(c, v), case_default()), ClosedChannelError);
  // Close while a select is blocked on a send case: it throws; on a receive case: nullopt.
  Chan<int> s(0);
  Chan<int> done(1);
  go([s, done] {
    int x = 1;
    int r = 0;
    try {
      select(case_send(s, x));
    } catch (const ClosedChannelError&) {
      r = 1;
    }
    done.send(r);
  });
  for (int k = 0; k < 20; ++k) this_fiber::yield();
  s.close();
  EXPECT_EQ(*done.recv(), 1);
  Chan<int> r(0);
  go([r, done] {
    Select<1> sel;
    std::optional<int> got = 5;
    sel.recv(r, &got);
    (void)sel.wait();
    done.send(!got && !sel.recv_ok() ? 1 : 0);
  });
  for (int k = 0; k < 20; ++k) this_fiber::yield();
  r.close();
  EXPECT_EQ(*done.recv(), 1);
}

FIBER_TEST(Select, BlocksUntilACaseProceeds) {
  Chan<int> a(0), b(0);
  Chan<int> done(1);
  for (int round = 0; round < 200; ++round) {
    go([a, b, done] {
      int which = -1, val = 0;
      select(case_recv(a, [&](std::optional<int> v) { which = 0, val = *v; }),
             case_recv(b, [&](std::optional<int> v) { which = 1, val = *v; }));
      done.send(which * 1000 + val);
    });
    if (round % 2 == 0) {
      a.send(round);
      EXPECT_EQ(*done.recv(), round);
    } else {
      b.send(round);
      EXPECT_EQ(*done.recv(), 1000 + round);
    }
  }
  // No registration remains on either channel.
  int v = 0;
  EXPECT_EQ(a.try_send(v), ChanStatus::would_block);
  EXPECT_EQ(b.try_send(v), ChanStatus::would_block);
}

FIBER_TEST(Select, TimeoutCase) {
  Chan<int> never(0);
  const auto t0 = Clock::now();
  bool timed_out = false;
  EXPECT_EQ(select(case_recv(never), case_timeout(5ms, [&] { timed_out = true; })), 1);
  EXPECT_TRUE(timed_out);
  EXPECT_GE(Clock::now() - t0, 5ms);
  // The earliest of several deadlines wins.
  EXPECT_EQ(select(case_timeout(1h), case_deadline(Clock::now() + 1ms), case_recv(never)), 1);
  // A ready case beats an expired deadline.
  Chan<int> ready(1);
  ready.send(1);
  EXPECT_EQ(select(case_deadline(Clock::now() - 1s), case_recv(ready)), 1);
  // Index form.
  Select<2> sel;
  sel.recv(never);
  const int t = sel.timeout(1ms);
  EXPECT_EQ(sel.wait(), t);
  EXPECT_EQ(select(case_timeout(1ms)), 0);  // a select of only a timeout sleeps
  // No registration remains after a timeout.
  int v = 0;
  EXPECT_EQ(never.try_send(v), ChanStatus::would_block);
}

// An Interrupt like a Context's: arm/disarm under a mutex, fire() cancels the armed waiter.
class TestInterrupt {
 public:
  TestInterrupt() = default;
  const detail::Interrupt* get() const { return &intr_; }
  void fire() {
    std::lock_guard lock(mu_);
    fired_ = true;
    if (w_ != nullptr && w_->claim(detail::WakeReason::canceled)) w_->ready();
    w_ = nullptr;
  }

 private:
  static void arm(void* self, detail::Waiter& w) {
    auto* t = static_cast<TestInterrupt*>(self);
    std::lock_guard lock(t->mu_);
    if (t->fired_) {
      if (w.claim(detail::WakeReason::canceled)) w.ready();
      return;
    }
    t->w_ = &w;
  }
  static void disarm(void* self, detail::Waiter& w) {
    auto* t = static_cast<TestInterrupt*>(self);
    std::lock_guard lock(t->mu_);
    if (t->w_ == &w) t->w_ = nullptr;
  }
  std::mutex mu_;
  detail::Waiter* w_ = nullptr;
  bool fired_ = false;
  detail::Interrupt intr_{this, &arm, &disarm};
};

FIBER_TEST(Select, InterruptForms) {
  Chan<int> ch(0);
  {
    TestInterrupt in;
    in.fire();
    int v = 1;
    EXPECT_EQ(ch.detail_send(v, kNoDeadline, in.get(), {}), ChanStatus::canceled);
    EXPECT_EQ(ch.detail_recv(kNoDeadline, in.get(), {}).status, ChanStatus::canceled);
    EXPECT_EQ(detail_select(kNoDeadline, in.get(), case_recv(ch)).status, ChanStatus::canceled);
    Select<1> sel;
    sel.recv(ch);
    EXPECT_EQ(sel.detail_wait(kNoDeadline, in.get(), {}).arg, -1);
    EXPECT_EQ(Chan<int>().detail_recv(kNoDeadline, in.get(), {}).status, ChanStatus::canceled);
  }
  EXPECT_EQ(ch.detail_recv(Clock::now() + 1ms, nullptr, {}).status, ChanStatus::timeout);
  EXPECT_EQ(detail_select(Clock::now() + 1ms, nullptr, case_recv(ch)).status, ChanStatus::timeout);
  // An outer deadline earlier than a timeout case is reported as -1/timeout.
  EXPECT_EQ(detail_select(Clock::now() + 1ms, nullptr, case_recv(ch), case_timeout(1h)).arg, -1);
  // Cancel while parked.
  TestInterrupt in;
  Chan<int> done(1);
  go([ch, done, &in] { done.send(ch.detail_recv(kNoDeadline, in.get(), {}).status == ChanStatus::canceled); });
  for (int k = 0; k < 20; ++k) this_fiber::yield();
  in.fire();
  EXPECT_EQ(*done.recv(), 1);
  int v = 0;
  EXPECT_EQ(ch.try_send(v), ChanStatus::would_block);  // the receiver withdrew
}

// A value is never both delivered and reported as cancelled: a sender and a receiver, each
// with its own interrupt, race the two cancels; the outcomes must agree.
FIBER_TEST(Select, CancelRaceNeverLosesOrDuplicates) {
  for (int round = 0; round < 1000; ++round) {
    Chan<std::unique_ptr<int>> ch(round % 2);
    Chan<int> outcome(2);
    TestInterrupt tx_in, rx_in;
    go([&] {
      auto p = std::make_unique<int>(round);
      const ChanStatus s = ch.detail_send(p, kNoDeadline, tx_in.get(), {});
      // ok <=> moved from
      outcome.send(s == ChanStatus::ok ? (p == nullptr ? 1 : 100) : (p != nullptr ? 0 : 100));
    });
    go([&] {
      auto r = ch.detail_recv(kNoDeadline, rx_in.get(), {});
      outcome.send(r.ok() ? (r.value && **r.value == round ? 10 : 100) : 0);
    });
    if (round % 3 == 0) this_fiber::yield();
    tx_in.fire();
    rx_in.fire();
    const int a = *outcome.recv(), b = *outcome.recv();
    const int sum = a + b;
    // Either the value went through (1 + 10), or neither side got it (0 + 0), or the sender
    // buffered it (cap 1) and the receiver was cancelled: then it is still in the channel.
    if (sum == 1) {
      ASSERT_EQ(ch.len(), 1u) << round;
    } else {
      ASSERT_TRUE(sum == 11 || sum == 0) << "round " << round << ": " << a << " " << b;
    }
  }
}

}  // namespace
}  // namespace spindle
