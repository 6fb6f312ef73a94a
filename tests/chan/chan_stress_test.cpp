// Stress: many producers and consumers with exact accounting (nothing lost, nothing duplicated),
// and close racing with blocked senders, receivers and selects, many times over.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 10;  // sanitizers are 5-50x slower: fewer rounds, same shapes
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif
#else
constexpr int kScale = 1;
#endif

// Go's test/chan/doubleselect.go shape without select: P producers each send kPer distinct
// values; C consumers receive until close; every value is seen exactly once.
void mpmc(std::size_t cap, int producers, int consumers, int per_producer) {
  Chan<std::int64_t> ch(cap);
  Chan<std::int64_t> results(static_cast<std::size_t>(consumers));
  std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(producers * per_producer));
  std::atomic<int> producers_left{producers};
  for (int p = 0; p < producers; ++p) {
    go([=, &producers_left] {
      for (int i = 0; i < per_producer; ++i) ch.send(std::int64_t{p} * per_producer + i);
      if (producers_left.fetch_sub(1) == 1) ch.close();
    });
  }
  for (int c = 0; c < consumers; ++c) {
    go([=, &seen] {
      std::int64_t n = 0;
      for (std::int64_t v : ch) {
        seen[static_cast<std::size_t>(v)].fetch_add(1, std::memory_order_relaxed);
        ++n;
      }
      results.send(n);
    });
  }
  std::int64_t total = 0;
  for (int c = 0; c < consumers; ++c) total += *results.recv();
  EXPECT_EQ(total, std::int64_t{producers} * per_producer);
  std::size_t bad = 0;
  for (auto& s : seen) bad += s.load() != 1;
  EXPECT_EQ(bad, 0u) << "values lost or duplicated (cap " << cap << ")";
}

FIBER_TEST(ChanStress, Mpmc8x8Unbuffered) { mpmc(0, 8, 8, 100000 / kScale); }
FIBER_TEST(ChanStress, Mpmc8x8Cap1) { mpmc(1, 8, 8, 100000 / kScale); }
FIBER_TEST(ChanStress, Mpmc8x8Cap16) { mpmc(16, 8, 8, 100000 / kScale); }
FIBER_TEST(ChanStress, Mpmc2x2Cap100) { mpmc(100, 2, 2, 100000 / kScale); }

// The same through selects: each producer offers on two channels at once, each consumer
// listens on both; values must still arrive exactly once.
FIBER_TEST(ChanStress, SelectMpmc) {
  constexpr int kP = 4, kC = 4;
  const int per = 20000 / kScale;
  for (std::size_t cap : {0u, 8u}) {
    Chan<int> a(cap), b(cap);
    Chan<std::int64_t> results(kC);
    std::vector<std::atomic<std::uint8_t>> seen(static_cast<std::size_t>(kP * per));
    std::atomic<int> left{kP};
    for (int p = 0; p < kP; ++p) {
      go([=, &left] {
        for (int i = 0; i < per; ++i) {
          int v = p * per + i;
          (void)select(case_send(a, v), case_send(b, v));
        }
        if (left.fetch_sub(1) == 1) {
          a.close();
          b.close();
        }
      });
    }
    for (int c = 0; c < kC; ++c) {
      go([=, &seen] {
        Chan<int> x = a, y = b;  // set to nil once closed, as in Go
        std::int64_t n = 0;
        while (x || y) {
          std::optional<int> v;
          Select<2> sel;
          const int ix = sel.recv(x, &v);
          sel.recv(y, &v);
          const int i = sel.wait();
          if (!v) {
            (i == ix ? x : y) = Chan<int>();
            continue;
          }
          seen[static_cast<std::size_t>(*v)].fetch_add(1, std::memory_order_relaxed);
          ++n;
        }
        results.send(n);
      });
    }
    std::int64_t total = 0;
    for (int c = 0; c < kC; ++c) total += *results.recv();
    EXPECT_EQ(total, std::int64_t{kP} * per);
    std::size_t bad = 0;
    for (auto& s : seen) bad += s.load() != 1;
    EXPECT_EQ(bad, 0u);
  }
}

// Close racing with blocked senders, receivers and selects: every operation ends with a
// definite outcome, and what the senders report as sent is exactly what was received.
FIBER_TEST(ChanStress, CloseRacesWithEverything) {
  const int rounds = 3000 / kScale;
  for (int round = 0; round < rounds; ++round) {
    const std::size_t cap = static_cast<std::size_t>(round % 3);  // 0, 1, 2
    Chan<int> ch(cap);
    Chan<int> sent(16), received(16), finished(16);
    constexpr int kSenders = 3, kReceivers = 3, kSelects = 2;
    for (int i = 0; i < kSenders; ++i) {
      go([=] {
        int ok = 0;
        try {
          ch.send(1);
          ok = 1;
        } catch (const ClosedChannelError&) {
        }
        sent.send(ok);
        finished.send(1);
      });
    }
    for (int i = 0; i < kReceivers; ++i) {
      go([=] {
        received.send(ch.recv().has_value() ? 1 : 0);
        finished.send(1);
      });
    }
    for (int i = 0; i < kSelects; ++i) {
      go([=] {
        std::optional<int> got;
        int v = 1;
        int s = 0, r = 0;
        try {
          Select<2> sel;
          const int rc = sel.recv(ch, &got);
          sel.send(ch, v);
          const int idx = sel.wait();
          if (idx == rc) {
            r = got ? 1 : 0;
          } else {
            s = 1;
          }
        } catch (const ClosedChannelError&) {
        }
        sent.send(s);
        received.send(r);
        finished.send(1);
      });
    }
    if (round % 2 == 0) this_fiber::yield();
    ch.close();
    int total_sent = 0, total_received = 0;
    for (int i = 0; i < kSenders + kSelects; ++i) total_sent += *sent.recv();
    for (int i = 0; i < kReceivers + kSelects; ++i) total_received += *received.recv();
    for (int i = 0; i < kSenders + kReceivers + kSelects; ++i) (void)finished.recv();
    int drained = 0;
    while (ch.recv()) ++drained;
    ASSERT_EQ(total_sent, total_received + drained) << "round " << round;
  }
}

}  // namespace
}  // namespace spindle
