// Microbenchmarks of the hot paths of spindle::patterns: a rate limiter's allow (x/time/rate
// semantics, the clock read included or the time passed in), the circuit breaker's two-step
// allow -> report and its wrapping execute, a bulkhead compartment's acquire/release, a keyed
// limiter's allow over many keys, and one item's hop through a pipeline stage. Each runs in a
// fiber of a fresh runtime (workers = the Arg) and uncontended unless the name says otherwise.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <string>

#include <spindle/patterns.hpp>
#include <spindle/runtime.hpp>
#include <spindle/waitgroup.hpp>

namespace {

using namespace spindle;
using namespace spindle::patterns;
using namespace std::chrono_literals;

template <class Body>
void in_runtime(benchmark::State& state, Body body) {
  run(Options{.workers = static_cast<int>(state.range(0))}, [&] { body(); });
}

void BM_LimiterAllow(benchmark::State& state) {
  in_runtime(state, [&] {
    Limiter lim(1e12, 1'000'000'000);  // never runs dry: measures the allowed path
    for (auto _ : state) benchmark::DoNotOptimize(lim.allow());
  });
}
BENCHMARK(BM_LimiterAllow)->Arg(1);

void BM_LimiterAllowNAtTime(benchmark::State& state) {
  in_runtime(state, [&] {
    ManualClock clock;
    Limiter lim(1e12, 1'000'000'000, &clock);
    const TimePoint t = clock.now();
    for (auto _ : state) benchmark::DoNotOptimize(lim.allow_n(t, 1));
  });
}
BENCHMARK(BM_LimiterAllowNAtTime)->Arg(1);

void BM_LimiterDenied(benchmark::State& state) {
  in_runtime(state, [&] {
    Limiter lim(1e-9, 1);  // one token, then nothing for ages: measures the rejected path
    (void)lim.allow();
    for (auto _ : state) benchmark::DoNotOptimize(lim.allow());
  });
}
BENCHMARK(BM_LimiterDenied)->Arg(1);

void BM_BreakerAllowReport(benchmark::State& state) {
  in_runtime(state, [&] {
    CircuitBreaker cb({.name = "bench"});
    for (auto _ : state) {
      auto t = cb.allow();
      t->success();
    }
  });
}
BENCHMARK(BM_BreakerAllowReport)->Arg(1);

void BM_BreakerRollingWindowAllowReport(benchmark::State& state) {
  in_runtime(state, [&] {
    CircuitBreaker cb({.interval = 10s, .buckets = 10, .ready_to_trip = trip::failure_ratio(0.5, 100)});
    for (auto _ : state) {
      auto t = cb.allow();
      t->success();
    }
  });
}
BENCHMARK(BM_BreakerRollingWindowAllowReport)->Arg(1);

void BM_BreakerExecute(benchmark::State& state) {
  in_runtime(state, [&] {
    CircuitBreaker cb({.name = "bench"});
    std::uint64_t n = 0;
    for (auto _ : state) benchmark::DoNotOptimize(cb.execute([&] { ++n; }));
  });
}
BENCHMARK(BM_BreakerExecute)->Arg(1);

void BM_BreakerOpenReject(benchmark::State& state) {
  in_runtime(state, [&] {
    CircuitBreaker cb({.timeout = 1h, .ready_to_trip = trip::consecutive_failures(1)});
    cb.allow()->failure();
    for (auto _ : state) benchmark::DoNotOptimize(cb.allow().ok());
  });
}
BENCHMARK(BM_BreakerOpenReject)->Arg(1);

void BM_BulkheadAcquireRelease(benchmark::State& state) {
  in_runtime(state, [&] {
    Compartment c("bench", 64);
    for (auto _ : state) {
      auto p = c.try_acquire();
      benchmark::DoNotOptimize(p.ok());
    }  // released here
  });
}
BENCHMARK(BM_BulkheadAcquireRelease)->Arg(1);

void BM_BulkheadExecuteByName(benchmark::State& state) {
  in_runtime(state, [&] {
    Bulkhead bh;
    bh.add("a", 8);
    bh.add("bench", 64);
    bh.add("z", 8);
    for (auto _ : state) benchmark::DoNotOptimize(bh.execute("bench", [] {}));
  });
}
BENCHMARK(BM_BulkheadExecuteByName)->Arg(1);

void BM_KeyedLimiterAllow(benchmark::State& state) {
  in_runtime(state, [&] {
    KeyedLimiter<std::uint64_t> lim({.limit = 1e12, .burst = 1'000'000'000});
    std::uint64_t k = 0;
    for (auto _ : state) benchmark::DoNotOptimize(lim.allow(k++ & 1023));  // 1,024 hot keys
  });
}
BENCHMARK(BM_KeyedLimiterAllow)->Arg(1);

// One item through `hops` identity stages (1 worker each, buffer 64) into a counting sink.
// Reports the time per item per hop.
void BM_PipelineStageHop(benchmark::State& state) {
  constexpr int kItems = 20'000;
  constexpr int kHops = 4;
  in_runtime(state, [&] {
    for (auto _ : state) {
      Pipeline p(background());
      Receiver<int> r = p.source<int>("src", [](const Context&, Emit<int>& emit) {
        for (int i = 0; i < kItems; ++i) {
          if (!emit(i)) return;
        }
      }, 64);
      for (int h = 0; h < kHops; ++h) {
        r = p.stage("hop" + std::to_string(h), r, {.workers = 1, .buffer = 64}, [](int v) { return v; });
      }
      std::atomic<int> n{0};
      p.sink("sink", r, {}, [&](int) { n.fetch_add(1, std::memory_order_relaxed); });
      if (p.wait() || n.load() != kItems) state.SkipWithError("pipeline lost items");
    }
  });
  state.SetItemsProcessed(state.iterations() * kItems * (kHops + 1));  // sink hop included
}
BENCHMARK(BM_PipelineStageHop)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
