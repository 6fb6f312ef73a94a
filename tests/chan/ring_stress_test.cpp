// The buffered ring's two modes racing (runtime/src/chan/ring.hpp): each end behind its own
// lock while nobody waits, the channel's lock while somebody does. Every operation below flips
// between the modes (a full or empty ring parks someone; a timed wait gives up and withdraws; a
// non-blocking try goes through its end or fails), on capacities whose ring positions wrap at
// odd places, and the accounting is exact: every value is received once, and what senders
// report is what arrived.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

// Sends v with one of four forms, retrying the ones that can fail, until it is in.
void send_somehow(const Chan<std::int64_t>& ch, std::int64_t v, int form) {
  switch (form % 4) {
    case 0:
      ch.send(v);
      return;
    case 1:
      while (ch.try_send(v) != ChanStatus::ok) this_fiber::yield();
      return;
    case 2:
      while (ch.send_for(v, 50us) != ChanStatus::ok) {
      }
      return;
    default: {
      Chan<std::int64_t> never(0);
      for (;;) {
        Select<3> sel;
        const int to_ch = sel.send(ch, v);
        sel.recv(never);
        sel.timeout(50us);
        if (sel.wait() == to_ch) return;
      }
    }
  }
}

// Receives with one of four forms; nullopt once the channel is closed and drained.
std::optional<std::int64_t> recv_somehow(const Chan<std::int64_t>& ch, int form) {
  switch (form % 4) {
    case 0:
      return ch.recv();
    case 1:
      for (;;) {
        auto r = ch.try_recv();
        if (r.status == ChanStatus::ok) return std::move(r.value);
        if (r.status == ChanStatus::closed) return std::nullopt;
        this_fiber::yield();
      }
    case 2:
      for (;;) {
        auto r = ch.recv_for(50us);
        if (r.status == ChanStatus::ok) return std::move(r.value);
        if (r.status == ChanStatus::closed) return std::nullopt;
      }
    default: {
      Chan<std::int64_t> never(0);
      for (;;) {
        std::optional<std::int64_t> got;
        Select<3> sel;
        const int from_ch = sel.recv(ch, &got);
        sel.recv(never);
        sel.timeout(50us);
        if (sel.wait() == from_ch) return got;  // nullopt: closed
      }
    }
  }
}

void mixed_forms(std::size_t cap, int producers, int consumers, int per_producer) {
  Chan<std::int64_t> ch(cap);
  Chan<std::int64_t> results(static_cast<std::size_t>(consumers));
  std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(producers * per_producer));
  std::atomic<int> producers_left{producers};
  std::atomic<std::size_t> max_len{0};
  for (int p = 0; p < producers; ++p) {
    go([=, &producers_left, &max_len] {
      for (int i = 0; i < per_producer; ++i) {
        send_somehow(ch, std::int64_t{p} * per_producer + i, p + i / 64);
        const std::size_t len = ch.len();
        if (len > max_len.load(std::memory_order_relaxed)) max_len.store(len, std::memory_order_relaxed);
      }
      if (producers_left.fetch_sub(1) == 1) ch.close();
    });
  }
  for (int c = 0; c < consumers; ++c) {
    go([=, &seen] {
      std::int64_t n = 0;
      for (int k = 0;; ++k) {
        const auto v = recv_somehow(ch, c + k / 64);
        if (!v) break;
        seen[static_cast<std::size_t>(*v)].fetch_add(1, std::memory_order_relaxed);
        ++n;
      }
      results.send(n);
    });
  }
  std::int64_t total = 0;
  for (int c = 0; c < consumers; ++c) total += *results.recv();
  EXPECT_EQ(total, std::int64_t{producers} * per_producer) << "cap " << cap;
  std::size_t bad = 0;
  for (auto& s : seen) bad += s.load() != 1;
  EXPECT_EQ(bad, 0u) << "values lost or duplicated (cap " << cap << ")";
  EXPECT_LE(max_len.load(), cap);
}

FIBER_TEST(RingStress, MixedFormsCap1) { mixed_forms(1, 4, 4, 20000 / kScale); }
FIBER_TEST(RingStress, MixedFormsCap3) { mixed_forms(3, 4, 3, 20000 / kScale); }
FIBER_TEST(RingStress, MixedFormsCap7) { mixed_forms(7, 3, 5, 20000 / kScale); }
FIBER_TEST(RingStress, MixedFormsCap64) { mixed_forms(64, 6, 2, 20000 / kScale); }

// The receiver of the last value may end the channel at once, while a sender is still inside
// its send: once its value can be taken, a send must not touch the channel again. Two senders
// and a parked receiver make the second send take the lock and leave its value in the ring
// as it returns the ring to end operations, which the receiver, woken by the first, may take
// at once. (The sanitizer builds catch a late touch; this is how `done` channels are used.)
FIBER_TEST(RingStress, ReceiverEndsTheChannelRightAfterTheValue) {
  for (int round = 0; round < 20000 / kScale; ++round) {
    auto ch = std::make_unique<Chan<int>>(2);
    Chan<int>& c = *ch;
    go([&c] { c.send(1); });
    go([&c] { c.send(2); });
    const int sum = *c.recv() + *c.recv();
    ch.reset();
    ASSERT_EQ(sum, 3);
  }
}

// Values that own memory and cannot be copied, through a ring whose slots wrap many times; what
// is left in the ring when the last handle goes is destroyed with it (ASan checks both).
FIBER_TEST(RingStress, OwningValuesAcrossLaps) {
  constexpr int kPer = 5000 / kScale;
  Chan<std::unique_ptr<std::string>> ch(5);
  Chan<int> done(2);
  for (int p = 0; p < 2; ++p) {
    go([=] {
      for (int i = 0; i < kPer; ++i) ch.send(std::make_unique<std::string>(std::to_string(p * kPer + i)));
      done.send(1);
    });
  }
  std::vector<int> seen(2 * kPer);
  for (int i = 0; i < 2 * kPer - 3; ++i) ++seen[static_cast<std::size_t>(std::stoi(**ch.recv()))];
  (void)*done.recv();
  (void)*done.recv();
  EXPECT_EQ(ch.len(), 3u);  // three left in the ring for the destructor
  int twice = 0;
  for (int s : seen) twice += s > 1;
  EXPECT_EQ(twice, 0);
}

// An over-aligned element: its slots keep its alignment.
struct alignas(64) Wide {
  std::int64_t v = 0;
  char pad[56] = {};
};

FIBER_TEST(RingStress, OverAlignedElements) {
  Chan<Wide> ch(3);
  Chan<int> done(1);
  go([=] {
    for (int i = 0; i < 1000; ++i) ch.send(Wide{.v = i});
    ch.close();
  });
  std::int64_t expect = 0;
  for (const Wide& w : ch) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&w) % 64, 0u);
    EXPECT_EQ(w.v, expect++);  // one producer: FIFO
  }
  EXPECT_EQ(expect, 1000);
}

}  // namespace
}  // namespace spindle
