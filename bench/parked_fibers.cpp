// parked_fibers: spawns 1,000,000 fibers that each block receiving from one shared channel,
// then closes it and joins them all. Prints the time to spawn and to wake+join, the peak RSS and
// the bytes per parked fiber (peak RSS growth / fibers).
//   usage: parked_fibers [--small] [--workers N] [--fibers N]
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

namespace {

long rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  long fibers = 1'000'000;
  int workers = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--small") == 0) fibers = 10'000;
    else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) workers = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--fibers") == 0 && i + 1 < argc) fibers = std::atol(argv[++i]);
  }
  const long base_kb = rss_kb();
  double spawn_ms = 0, wake_ms = 0;
  long woke_all = spindle::run(spindle::Options{.workers = workers}, [&] {
    spindle::Chan<int> gate(0);
    std::atomic<long> started{0}, woke{0};
    spindle::WaitGroup wg;
    wg.add(fibers);
    const auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < fibers; ++i) {
      spindle::go([&, gate] {
        started.fetch_add(1, std::memory_order_relaxed);
        (void)gate.recv();  // parks until the close
        woke.fetch_add(1, std::memory_order_relaxed);
        wg.done();
      });
    }
    while (started.load(std::memory_order_relaxed) < fibers) spindle::this_fiber::yield();
    const auto t1 = std::chrono::steady_clock::now();
    gate.close();
    wg.wait();
    const auto t2 = std::chrono::steady_clock::now();
    spawn_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    wake_ms = std::chrono::duration<double, std::milli>(t2 - t1).count();
    return woke.load();
  });
  if (woke_all != fibers) {
    std::fprintf(stderr, "parked_fibers: %ld of %ld fibers woke\n", woke_all, fibers);
    return 1;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const long peak_kb = ru.ru_maxrss;
  std::printf("parked_fibers: %ld fibers parked in %.0f ms, woken and joined in %.0f ms\n", fibers,
              spawn_ms, wake_ms);
  std::printf("peak RSS %.1f MiB (%.1f MiB before spawning): %.0f bytes per parked fiber\n",
              peak_kb / 1024.0, base_kb / 1024.0,
              static_cast<double>(peak_kb - base_kb) * 1024.0 / static_cast<double>(fibers));
  return 0;
}
