// Pipeline: every item through every stage exactly once with exact metrics; fail / skip /
// dead-letter policies; cancellation of an infinite pipeline; bounded in-flight items
// (backpressure); latency percentiles on a ManualClock; queue depth; exceptions; bad options.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <string>
#include <vector>

#include <spindle/patterns/pipeline.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

const std::error_code kBad = make_error_code(std::errc::invalid_argument);

std::vector<int> iota(int n, int from = 0) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(from + i);
  return v;
}

FIBER_TEST(Pipeline, EveryItemThroughEveryStageOnce) {
  Pipeline p(background());
  auto nums = p.from("numbers", iota(1000, 1), 8);
  auto strs = p.stage("to-string", nums, {.workers = 2, .buffer = 4},
                      [](const Context&, int v) { return std::to_string(v); });
  auto lens = p.stage("parse", strs, {.workers = 4},
                      [](std::string s) -> Result<long> { return std::stol(s); });
  Mutex mu;
  std::vector<long> got;
  p.sink("collect", lens, {.workers = 3}, [&](const Context&, long v) {
    std::lock_guard lock(mu);
    got.push_back(v);
  });
  EXPECT_FALSE(p.wait());
  std::sort(got.begin(), got.end());
  std::vector<long> want;
  for (int i = 1; i <= 1000; ++i) want.push_back(i);
  EXPECT_EQ(got, want);
  const auto m = p.metrics();
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].name, "numbers");
  EXPECT_EQ(m[0].out, 1000u);
  for (std::size_t i = 1; i < 4; ++i) {
    EXPECT_EQ(m[i].in, 1000u) << m[i].name;
    EXPECT_EQ(m[i].out, 1000u) << m[i].name;
    EXPECT_EQ(m[i].errors, 0u);
    EXPECT_EQ(m[i].latency.samples, 1000u > Pipeline::kLatencyWindow ? Pipeline::kLatencyWindow : 1000u);
  }
  EXPECT_EQ(m[1].workers, 2u);
  EXPECT_EQ(m[1].queue_capacity, 8u);  // its input is the source's output
  EXPECT_EQ(m[2].queue_capacity, 4u);
  EXPECT_EQ(m[1].queue_depth, 0u);
}

FIBER_TEST(Pipeline, FailPolicyCancelsEverything) {
  Pipeline p(background());
  auto nums = p.source<int>("forever", [](const Context&, Emit<int>& emit) {
    for (int i = 0;; ++i) {
      if (!emit(i)) return;  // cancelled
    }
  });
  auto checked = p.stage("check", nums, {.workers = 3}, [](int v) -> Result<int> {
    if (v == 500) return kBad;
    return v;
  });
  std::atomic<int> consumed{0};
  p.sink("drop", checked, {}, [&](int) { ++consumed; });
  EXPECT_EQ(p.wait(), kBad);
  EXPECT_TRUE(p.context().err());
  EXPECT_GE(consumed.load(), 1);
  const auto m = p.metrics();
  EXPECT_EQ(m[1].errors, 1u);
}

FIBER_TEST(Pipeline, SkipPolicyCountsAndContinues) {
  Pipeline p(background());
  auto nums = p.from("n", iota(1000));
  auto odd = p.stage("no-tens", nums, {.workers = 4, .on_error = ErrorPolicy::skip},
                     [](int v) -> Result<int> {
                       if (v % 10 == 0) return kBad;
                       return v;
                     });
  std::atomic<int> n{0};
  p.sink("count", odd, {.workers = 2}, [&](int) { ++n; });
  EXPECT_FALSE(p.wait());
  EXPECT_EQ(n.load(), 900);
  const auto m = p.metrics();
  EXPECT_EQ(m[1].in, 1000u);
  EXPECT_EQ(m[1].out, 900u);
  EXPECT_EQ(m[1].errors, 100u);
  EXPECT_EQ(m[1].skipped, 100u);
}

FIBER_TEST(Pipeline, DeadLettersGetTheFailedItems) {
  Pipeline p(background());
  Chan<DeadLetter<int>> dlq(0);
  std::vector<int> dead;
  WaitGroup reader;
  reader.go([&] {
    for (DeadLetter<int> d : dlq) {
      EXPECT_EQ(d.error, kBad);
      EXPECT_EQ(d.stage, "sevens");
      dead.push_back(d.item);
    }
  });
  auto nums = p.from("n", iota(100));
  auto ok = p.stage("sevens", nums, {.workers = 2, .on_error = ErrorPolicy::dead_letter},
                    [](int v) -> Result<int> {
                      if (v % 7 == 0) return kBad;
                      return v;
                    },
                    Sender<DeadLetter<int>>(dlq));
  std::atomic<int> n{0};
  p.sink("count", ok, {}, [&](int) { ++n; });
  EXPECT_FALSE(p.wait());
  dlq.close();
  reader.wait();
  std::sort(dead.begin(), dead.end());
  std::vector<int> want;
  for (int v = 0; v < 100; v += 7) want.push_back(v);
  EXPECT_EQ(dead, want);
  EXPECT_EQ(n.load(), 100 - static_cast<int>(want.size()));
  EXPECT_EQ(p.metrics()[1].dead_lettered, want.size());
}

FIBER_TEST(Pipeline, CancelStopsAnInfinitePipeline) {
  auto [parent, cancel_parent] = with_cancel(background());
  Pipeline p(parent);
  auto nums = p.source<int>("forever", [](const Context&, Emit<int>& emit) {
    for (int i = 0; emit(i); ++i) {
    }
  });
  auto a = p.stage("a", nums, {.workers = 4, .buffer = 16}, [](int v) { return v + 1; });
  auto b = p.stage("b", a, {.workers = 2}, [](int v) { return v * 2; });
  std::atomic<int> seen{0};
  p.sink("slow", b, {}, [&](int) {
    if (++seen == 100) cancel_parent();  // the parent's cancellation reaches every stage
  });
  EXPECT_EQ(p.wait(), spindle::errc::canceled);
  EXPECT_GE(seen.load(), 100);
}

FIBER_TEST(Pipeline, BackpressureBoundsItemsInFlight) {
  Pipeline p(background());
  std::atomic<int> emitted{0}, consumed{0}, max_gap{0};
  auto nums = p.source<int>("src", [&](const Context&, Emit<int>& emit) {
    for (int i = 0; i < 2000; ++i) {
      if (!emit(i)) return;
      const int gap = ++emitted - consumed.load();
      int m = max_gap.load();
      while (gap > m && !max_gap.compare_exchange_weak(m, gap)) {
      }
    }
  }, 2);
  auto mid = p.stage("mid", nums, {.workers = 3, .buffer = 4}, [](int v) { return v; });
  p.sink("slow", mid, {.workers = 1}, [&](int) {
    this_fiber::yield();
    ++consumed;
  });
  EXPECT_FALSE(p.wait());
  // source buffer 2 + mid's 3 workers + mid's buffer 4 + the sink's 1 item (+1 for the
  // emit/count window): never the whole input.
  EXPECT_LE(max_gap.load(), 2 + 3 + 4 + 1 + 1);
  EXPECT_EQ(consumed.load(), 2000);
}

FIBER_TEST(Pipeline, LatencyPercentilesOnTheClock) {
  ManualClock clock;
  Pipeline p(background(), &clock);
  auto nums = p.from("n", iota(100, 1));
  auto timed = p.stage("timed", nums, {.workers = 1}, [&](int v) {
    clock.advance(std::chrono::milliseconds(v));  // "takes" v ms
    return v;
  });
  p.sink("sink", timed, {}, [](int) {});
  EXPECT_FALSE(p.wait());
  const LatencySummary l = p.metrics()[1].latency;
  EXPECT_EQ(l.samples, 100u);
  EXPECT_EQ(l.p50, 50ms);
  EXPECT_EQ(l.p90, 90ms);
  EXPECT_EQ(l.p99, 99ms);
  EXPECT_EQ(l.max, 100ms);
}

FIBER_TEST(Pipeline, QueueDepthShowsTheBacklog) {
  Pipeline p(background());
  Chan<int> gate(0);
  auto nums = p.from("n", iota(10), 8);
  p.sink("stuck", nums, {}, [&](int) { (void)gate.recv(); });
  // The sink holds one item; the source fills the 8-slot channel and blocks on the tenth.
  while (p.metrics()[1].queue_depth < 8) this_fiber::yield();
  EXPECT_EQ(p.metrics()[1].queue_depth, 8u);
  gate.close();
  EXPECT_FALSE(p.wait());
  EXPECT_EQ(p.metrics()[1].queue_depth, 0u);
}

FIBER_TEST(Pipeline, ExceptionsFailThePipelineAndAreRethrown) {
  Pipeline p(background());
  auto nums = p.from("n", iota(10));
  p.sink("boom", nums, {}, [](int v) {
    if (v == 3) throw std::runtime_error("stage blew up");
  });
  EXPECT_THROW((void)p.wait(), std::runtime_error);
}

FIBER_TEST(Pipeline, DroppedWithoutWaitJoinsEverything) {
  {
    Pipeline p(background());
    auto nums = p.source<int>("forever", [](const Context&, Emit<int>& emit) {
      for (int i = 0; emit(i); ++i) {
      }
    });
    auto a = p.stage("a", nums, {.workers = 2}, [](int v) { return v; });
    (void)a;  // nobody reads a: the destructor's cancellation must still end everything
  }
}

FIBER_TEST(Pipeline, BadOptionsThrow) {
  Pipeline p(background());
  auto nums = p.from("n", iota(1));
  EXPECT_THROW((void)p.stage("zero", nums, {.workers = 0}, [](int v) { return v; }), ConfigError);
  EXPECT_THROW((void)p.stage("dlq", nums, {.on_error = ErrorPolicy::dead_letter}, [](int v) { return v; }),
               ConfigError);
  p.sink("drain", nums, {}, [](int) {});
  EXPECT_FALSE(p.wait());
}

}  // namespace
}  // namespace spindle::patterns
