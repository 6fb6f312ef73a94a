// Channel and select microbenchmarks (Google Benchmark), the shapes of bench/peers/go:
//   BM_ChanPingPong      two fibers bounce a counter over two unbuffered channels (per round trip)
//   BM_ChanSpsc          one producer, one consumer, capacity 1024 (per message)
//   BM_ChanMpmc          4 producers, 4 consumers, capacity 128 (per message)
//   BM_SelectTwoChans    two producers each feed a channel; one consumer selects over both
//                        (per message), unbuffered (arg 0) and capacity 1024
// The argument "workers" is the runtime's worker count. "ns/msg" is the time per message (per
// round trip for ping-pong). Each benchmark iteration runs a fixed batch inside one runtime, so
// runtime start-up is outside the timed region.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <optional>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>

namespace {

using namespace spindle;

Options opts_for(const benchmark::State& state) {
  Options o;
  o.workers = static_cast<int>(state.range(0));
  return o;
}

void report(benchmark::State& state, std::int64_t messages) {
  state.SetItemsProcessed(messages);
  state.counters["ns/msg"] = benchmark::Counter(
      static_cast<double>(messages), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Joins n fibers that each send once on `done`.
void join(const Chan<int>& done, int n) {
  for (int i = 0; i < n; ++i) (void)done.recv();
}

void BM_ChanPingPong(benchmark::State& state) {
  std::int64_t trips = 0;
  spindle::run(opts_for(state), [&] {
    Chan<long> ping(0), pong(0);
    Chan<int> done(1);
    go([=] {
      for (long v : ping) pong.send(v + 1);
      done.send(1);
    });
    long i = 0;
    for (auto _ : state) {
      ping.send(i);
      if (*pong.recv() != i + 1) state.SkipWithError("wrong reply");
      ++i;
    }
    trips = i;
    ping.close();
    join(done, 1);
  });
  report(state, trips);
}

constexpr long kBatch = 1 << 16;

void BM_ChanSpsc(benchmark::State& state) {
  std::int64_t total = 0;
  spindle::run(opts_for(state), [&] {
    for (auto _ : state) {
      Chan<long> ch(1024);
      go([ch] {
        for (long i = 0; i < kBatch; ++i) ch.send(i);
        ch.close();
      });
      long expect = 0;
      for (long v : ch) {
        if (v != expect++) state.SkipWithError("out of order");
      }
      total += kBatch;
    }
  });
  report(state, total);
}

void BM_ChanMpmc(benchmark::State& state) {
  constexpr int kProducers = 4, kConsumers = 4;
  constexpr long kPer = kBatch / kProducers;
  std::int64_t total = 0;
  spindle::run(opts_for(state), [&] {
    for (auto _ : state) {
      Chan<long> ch(128);
      Chan<long> counts(kConsumers);
      std::atomic<int> left{kProducers};
      for (int p = 0; p < kProducers; ++p) {
        go([ch, p, &left] {
          for (long i = p * kPer; i < (p + 1) * kPer; ++i) ch.send(i);
          if (left.fetch_sub(1) == 1) ch.close();
        });
      }
      for (int c = 0; c < kConsumers; ++c) {
        go([ch, counts] {
          long n = 0;
          for (long v : ch) n += v >= 0;
          counts.send(n);
        });
      }
      long n = 0;
      for (int c = 0; c < kConsumers; ++c) n += *counts.recv();
      if (n != kBatch) state.SkipWithError("lost messages");
      total += kBatch;
    }
  });
  report(state, total);
}

void BM_SelectTwoChans(benchmark::State& state) {
  const auto cap = static_cast<std::size_t>(state.range(1));
  std::int64_t total = 0;
  spindle::run(opts_for(state), [&] {
    for (auto _ : state) {
      Chan<long> a(cap), b(cap);
      auto produce = [](Chan<long> ch, long from) {
        for (long i = from; i < from + kBatch / 2; ++i) ch.send(i);
        ch.close();
      };
      go(produce, a, 0L);
      go(produce, b, kBatch / 2);
      Chan<long> ra = a, rb = b;
      long n = 0;
      while (ra || rb) {
        std::optional<long> va, vb;
        Select<2> sel;
        sel.recv(ra, &va);
        sel.recv(rb, &vb);
        if (sel.wait() == 0) {
          if (!va) ra = Chan<long>();
          else ++n;
        } else {
          if (!vb) rb = Chan<long>();
          else ++n;
        }
      }
      if (n != kBatch) state.SkipWithError("lost messages");
      total += kBatch;
    }
  });
  report(state, total);
}

}  // namespace

BENCHMARK(BM_ChanPingPong)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_ChanSpsc)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_ChanMpmc)->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime();
BENCHMARK(BM_SelectTwoChans)
    ->ArgNames({"workers", "cap"})
    ->Args({1, 0})
    ->Args({2, 0})
    ->Args({1, 1024})
    ->Args({2, 1024})
    ->UseRealTime();
