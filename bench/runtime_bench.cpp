// Microbenchmarks of the runtime core: spawn+join, yield (a context switch through the
// scheduler), mutex under contention, WaitGroup, and timers. Each runs inside a fresh runtime
// per benchmark (workers = the benchmark's Arg), so scheduler start-up is outside the timing.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>

#include <spindle/mutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

namespace {

using namespace spindle;

// Runs `body` in a runtime with state.range(0) workers.
template <class Body>
void in_runtime(benchmark::State& state, Body body) {
  run(Options{.workers = static_cast<int>(state.range(0))}, [&] { body(); });
}

void BM_SpawnJoin(benchmark::State& state) {
  constexpr int kBatch = 10'000;
  in_runtime(state, [&] {
    for (auto _ : state) {
      WaitGroup wg;
      std::atomic<int> ran{0};
      for (int i = 0; i < kBatch; ++i) wg.go([&] { ran.fetch_add(1, std::memory_order_relaxed); });
      wg.wait();
      if (ran.load() != kBatch) state.SkipWithError("lost a fiber");
    }
  });
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SpawnJoin)->Arg(1)->Arg(2)->UseRealTime();

void BM_Yield(benchmark::State& state) {
  // Two fibers yielding to each other on one worker: each yield is one switch out and one in.
  in_runtime(state, [&] {
    std::atomic<bool> stop{false};
    WaitGroup wg;
    wg.go([&] {
      while (!stop.load(std::memory_order_relaxed)) this_fiber::yield();
    });
    for (auto _ : state) this_fiber::yield();
    stop = true;
    wg.wait();
  });
}
BENCHMARK(BM_Yield)->Arg(1)->UseRealTime();

void BM_MutexContended(benchmark::State& state) {
  // 1,000 fibers x 100 increments of one counter.
  constexpr int kFibers = 1'000, kIncrements = 100;
  in_runtime(state, [&] {
    for (auto _ : state) {
      Mutex mu;
      long counter = 0;
      WaitGroup wg;
      for (int f = 0; f < kFibers; ++f) {
        wg.go([&] {
          for (int i = 0; i < kIncrements; ++i) {
            mu.lock();
            ++counter;
            mu.unlock();
          }
        });
      }
      wg.wait();
      if (counter != kFibers * kIncrements) state.SkipWithError("lost an increment");
    }
  });
  state.SetItemsProcessed(state.iterations() * kFibers * kIncrements);
}
BENCHMARK(BM_MutexContended)->Arg(1)->Arg(2)->UseRealTime();

void BM_WaitGroupAddDoneWait(benchmark::State& state) {
  in_runtime(state, [&] {
    WaitGroup wg;
    for (auto _ : state) {
      wg.add(1);
      wg.done();
      wg.wait();
    }
  });
}
BENCHMARK(BM_WaitGroupAddDoneWait)->Arg(1);

void BM_SleepTimers(benchmark::State& state) {
  // 10,000 fibers each sleep 1 ms at once: timer insert, expiry and wake-up throughput.
  constexpr int kSleepers = 10'000;
  in_runtime(state, [&] {
    for (auto _ : state) {
      WaitGroup wg;
      for (int i = 0; i < kSleepers; ++i) wg.go([] { this_fiber::sleep_for(std::chrono::milliseconds(1)); });
      wg.wait();
    }
  });
  state.SetItemsProcessed(state.iterations() * kSleepers);
}
BENCHMARK(BM_SleepTimers)->Arg(1)->Arg(2)->UseRealTime();

}  // namespace
