// Context cancellation at scale (the ctx_cancel workload of bench/peers/go/main.go): 100,000
// contexts derived from one root, each watched by a fiber blocked until its context is done;
// cancel the root and time until every watcher has observed it (manual time: only the span from
// cancel() to the last watcher's wg.done() is measured; setup is excluded, as in the Go peer).
//
// Variants:
//   BM_ContextCancel/done     watchers block in ctx.done().recv(), Go's `<-ctx.Done()`
//   BM_ContextCancel/wait     watchers block in a context-aware wait with no deadline (a
//                             receive from a nil channel with the context: only the context can
//                             end it), the Interrupt path every blocking call with a context uses
// Arguments: number of workers (0: the runtime's default, one per core).
// Counters: setup_ms (creating the contexts and fibers), fibers. (Linked into spindle_bench,
// whose main is benchmark_main.)
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

namespace {

constexpr int kContexts = 100000;

enum class Watch { done_channel, interrupt };

void run_cancel(benchmark::State& state, Watch how) {
  spindle::Options opts;
  opts.workers = static_cast<int>(state.range(0));
  double setup_ms = 0;
  int bad = 0;
  spindle::run(opts, [&] {
    for (auto _ : state) {
      const auto t0 = std::chrono::steady_clock::now();
      auto root = spindle::with_cancel(spindle::background());
      std::vector<spindle::CancelableContext> kids;
      kids.reserve(kContexts);
      std::atomic<int> started{0};
      std::atomic<int> wrong{0};
      spindle::WaitGroup wg;
      for (int i = 0; i < kContexts; ++i) {
        if (i % 1024 == 0) spindle::this_fiber::yield();  // a long loop: let the watchers start
        kids.push_back(spindle::with_cancel(root.ctx));
        spindle::Context ctx = kids.back().ctx;
        wg.go([&started, &wrong, ctx, how] {
          started.fetch_add(1, std::memory_order_relaxed);
          if (how == Watch::done_channel) {
            (void)ctx.done().recv();
          } else {
            (void)spindle::Chan<int>().recv(ctx);
          }
          if (ctx.err() != spindle::errc::canceled) wrong.fetch_add(1, std::memory_order_relaxed);
        });
      }
      // As the Go peer does: wait until every watcher has started (then they park at once).
      while (started.load(std::memory_order_relaxed) < kContexts) spindle::this_fiber::yield();
      const auto t1 = std::chrono::steady_clock::now();
      root.cancel();
      wg.wait();
      const auto t2 = std::chrono::steady_clock::now();
      state.SetIterationTime(std::chrono::duration<double>(t2 - t1).count());
      setup_ms += std::chrono::duration<double, std::milli>(t1 - t0).count();
      bad += wrong.load();
    }
  });
  if (bad != 0) state.SkipWithError("a watcher saw the wrong error");
  state.counters["setup_ms"] = setup_ms / static_cast<double>(state.iterations());
  state.counters["fibers"] = kContexts;
}

void BM_ContextCancel_done(benchmark::State& state) { run_cancel(state, Watch::done_channel); }
void BM_ContextCancel_wait(benchmark::State& state) { run_cancel(state, Watch::interrupt); }

BENCHMARK(BM_ContextCancel_done)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_ContextCancel_wait)->Arg(0)->Arg(1)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
