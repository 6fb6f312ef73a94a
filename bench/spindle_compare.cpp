// spindle's side of bench/compare: the same workloads as bench/peers/go and
// bench/peers/boostfiber, written with spindle, speaking the protocol of bench/peers/README.md:
//
//   spindle_compare <workload> --workers N [--scale small|full]
//
// prints one JSON line, and checks its own result (a wrong program cannot report a number).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/debug.hpp>
#include <spindle/mutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

namespace {

using namespace spindle;
using SteadyClock = std::chrono::steady_clock;

bool g_small = false;
bool g_stats = false;

long scaled(long n) { return g_small ? n / 100 : n; }

struct Result {
  const char* metric = "ms";
  double value = 0;
  std::vector<std::pair<std::string, double>> extra;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "CHECK FAILED: %s\n", what.c_str());
  std::exit(1);
}

double ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }
double ns_per(SteadyClock::duration d, long n) {
  return std::chrono::duration<double, std::nano>(d).count() / static_cast<double>(n);
}

double rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6);
  }
  return 0;
}

// A variable the fibers of a workload update while the fiber that spawned them goes on working,
// on cache lines of its own. In the Go peer such variables escape to the heap. Left on the
// spawning fiber's stack, they shared lines with the temporaries of its go() calls (objdump of
// spawn_join: `count` 8 bytes from the lambda, `wg` beside the spawn options), and every
// fiber's update took the line away from the spawner and back: false sharing that only the C++
// program had, not a cost of spawning.
template <class T>
struct alignas(64) OwnLine : T {
  using T::T;
};

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// --- skynet: 10-ary tree of fibers, each leaf sends its number, each node the sum of its 10.
void skynet_node(Chan<long long> out, long long num, long long size) {
  if (size == 1) {
    out.send(num);
    return;
  }
  Chan<long long> rc(0);
  const long long step = size / 10;
  for (int i = 0; i < 10; ++i) go([rc, num, step, i] { skynet_node(rc, num + i * step, step); });
  long long sum = 0;
  for (int i = 0; i < 10; ++i) sum += *rc.recv();
  out.send(sum);
}

Result skynet() {
  const long n = scaled(1'000'000);
  Chan<long long> c(0);
  const auto t0 = SteadyClock::now();
  go([c, n] { skynet_node(c, 0, n); });
  const long long sum = *c.recv();
  const auto d = SteadyClock::now() - t0;
  if (sum != static_cast<long long>(n) * (n - 1) / 2) fail(fmt::format("skynet sum {}", sum));
  double fibers = 0;
  for (long s = n; s >= 1; s /= 10) fibers += static_cast<double>(s);
  return {"ms", ms(d), {{"fibers", fibers}}};
}

Result spawn_join() {
  const long n = scaled(1'000'000);
  OwnLine<std::atomic<long>> count{0};
  OwnLine<WaitGroup> wg;
  wg.add(n);
  const auto t0 = SteadyClock::now();
  for (long i = 0; i < n; ++i) {
    go([&] {
      count.fetch_add(1, std::memory_order_relaxed);
      wg.done();
    });
  }
  const auto t1 = SteadyClock::now();
  wg.wait();
  const auto t2 = SteadyClock::now();
  if (count.load() != n) fail("spawn_join lost fibers");
  return {"ns/op", ns_per(t2 - t0, n),
          {{"spawn_ms", ms(t1 - t0)}, {"join_ms", ms(t2 - t1)}, {"fibers", double(n)}}};
}

Result pingpong() {
  const long n = scaled(1'000'000);
  Chan<long> ping(0), pong(0);
  std::atomic<long> bad{-1};
  WaitGroup wg;
  const auto t0 = SteadyClock::now();
  wg.go([&] {
    for (long i = 0; i < n; ++i) {
      ping.send(i);
      if (*pong.recv() != i + 1) bad.store(i);
    }
    ping.close();
  });
  wg.go([&] {
    for (long v : ping) pong.send(v + 1);
  });
  wg.wait();
  const auto d = SteadyClock::now() - t0;
  if (bad.load() >= 0) fail("pingpong: wrong reply");
  return {"ns/op", ns_per(d, n), {{"round_trips", double(n)}}};
}

Result spsc() {
  const long n = scaled(2'000'000);
  Chan<long> ch(1024);
  long got = 0, bad = -1;
  WaitGroup wg;
  const auto t0 = SteadyClock::now();
  wg.go([&] {
    for (long i = 0; i < n; ++i) ch.send(i);
    ch.close();
  });
  wg.go([&] {
    for (long v : ch) {
      if (v != got && bad < 0) bad = got;
      ++got;
    }
  });
  wg.wait();
  const auto d = SteadyClock::now() - t0;
  if (bad >= 0 || got != n) fail("spsc order/count");
  return {"ns/op", ns_per(d, n), {{"messages", double(n)}, {"capacity", 1024}}};
}

Result mpmc() {
  constexpr int kProducers = 4, kConsumers = 4;
  const long n = scaled(2'000'000) / kProducers * kProducers;
  const long per = n / kProducers;
  Chan<long> ch(128);
  WaitGroup producers, consumers;
  std::vector<long> counts(kConsumers), sums(kConsumers);
  const auto t0 = SteadyClock::now();
  for (int p = 0; p < kProducers; ++p) {
    producers.go([&, p] {
      for (long i = p * per; i < (p + 1) * per; ++i) ch.send(i);
    });
  }
  for (int c = 0; c < kConsumers; ++c) {
    consumers.go([&, c] {
      long cnt = 0, sum = 0;
      for (long v : ch) {
        ++cnt;
        sum += v;
      }
      counts[c] = cnt;
      sums[c] = sum;
    });
  }
  producers.wait();
  ch.close();
  consumers.wait();
  const auto d = SteadyClock::now() - t0;
  long cnt = 0, sum = 0;
  for (int c = 0; c < kConsumers; ++c) {
    cnt += counts[c];
    sum += sums[c];
  }
  if (cnt != n || sum != n * (n - 1) / 2) fail("mpmc count/sum");
  return {"ns/op", ns_per(d, n), {{"messages", double(n)}, {"capacity", 128}}};
}

Result select_workload(std::size_t capacity) {
  const long n = scaled(2'000'000) / 2 * 2;
  const long half = n / 2;
  Chan<long> a(capacity), b(capacity);
  auto produce = [half](Chan<long> ch, long from) {
    for (long i = from; i < from + half; ++i) ch.send(i);
    ch.close();
  };
  const auto t0 = SteadyClock::now();
  go(produce, a, half * 0);
  go(produce, b, half);
  long cnt = 0, sum = 0, from_a = 0;
  Chan<long> ra = a, rb = b;
  std::optional<long> va, vb;
  while (!ra.is_nil() || !rb.is_nil()) {
    Select<2> sel;
    sel.recv(ra, &va);
    sel.recv(rb, &vb);
    switch (sel.wait()) {
      case 0:
        if (!va) {
          ra = Chan<long>();
          continue;
        }
        ++cnt;
        ++from_a;
        sum += *va;
        break;
      default:
        if (!vb) {
          rb = Chan<long>();
          continue;
        }
        ++cnt;
        sum += *vb;
        break;
    }
  }
  const auto d = SteadyClock::now() - t0;
  if (cnt != n || sum != n * (n - 1) / 2 || from_a != half) fail("select count/sum");
  return {"ns/op", ns_per(d, n), {{"messages", double(n)}, {"capacity", double(capacity)}}};
}

Result mutex_workload() {
  const int fibers = g_small ? 100 : 1000, iters = g_small ? 100 : 1000;
  Mutex mu;
  long counter = 0;
  WaitGroup wg;
  const auto t0 = SteadyClock::now();
  for (int f = 0; f < fibers; ++f) {
    wg.go([&] {
      for (int i = 0; i < iters; ++i) {
        mu.lock();
        ++counter;
        mu.unlock();
      }
    });
  }
  wg.wait();
  const auto d = SteadyClock::now() - t0;
  if (counter != static_cast<long>(fibers) * iters) fail("mutex counter");
  return {"ns/op", ns_per(d, long(fibers) * iters), {{"fibers", double(fibers)}, {"locks", double(fibers) * iters}}};
}

Result parked() {
  const long n = scaled(1'000'000);
  const double base = rss_kb();
  Chan<int> done(0);
  OwnLine<std::atomic<long>> started{0}, woke{0};
  OwnLine<WaitGroup> wg;
  wg.add(n);
  const auto t0 = SteadyClock::now();
  for (long i = 0; i < n; ++i) {
    go([&, done] {
      started.fetch_add(1, std::memory_order_relaxed);
      (void)done.recv();
      woke.fetch_add(1, std::memory_order_relaxed);
      wg.done();
    });
  }
  while (started.load(std::memory_order_relaxed) < n) this_fiber::yield();
  const auto t1 = SteadyClock::now();
  done.close();
  wg.wait();
  const auto t2 = SteadyClock::now();
  if (woke.load() != n) fail("parked: not every fiber woke");
  return {"ms", ms(t2 - t0),
          {{"spawn_ms", ms(t1 - t0)}, {"wake_ms", ms(t2 - t1)}, {"fibers", double(n)}, {"base_rss_kb", base}}};
}

Result timers() {
  const long n = scaled(100'000);
  std::vector<std::int64_t> late(static_cast<std::size_t>(n));
  OwnLine<WaitGroup> wg;
  wg.add(n);  // once, as the Go peer does: not a shared counter bumped per spawn
  const auto t0 = SteadyClock::now();
  for (long i = 0; i < n; ++i) {
    go([&late, &wg, i] {
      const auto d = std::chrono::microseconds(1000 + splitmix64(static_cast<std::uint64_t>(i)) % 9001);
      const auto s = SteadyClock::now();
      this_fiber::sleep_for(d);
      late[static_cast<std::size_t>(i)] =
          std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - s - d).count();
      wg.done();
    });
  }
  wg.wait();
  const auto wall = SteadyClock::now() - t0;
  std::sort(late.begin(), late.end());
  if (late.front() < 0) fail("timers: a fiber woke early");
  double sum = 0;
  for (auto l : late) sum += static_cast<double>(l);
  const auto p99 = late[static_cast<std::size_t>((n * 99 + 99) / 100 - 1)];
  return {"ms", ms(wall),
          {{"mean_late_us", sum / double(n) / 1e3}, {"p99_late_us", double(p99) / 1e3},
           {"max_late_us", double(late.back()) / 1e3}, {"fibers", double(n)}}};
}

Result ctx_cancel() {
  const long n = scaled(100'000);
  auto [root, cancel] = with_cancel(background());
  OwnLine<std::atomic<long>> started{0};
  OwnLine<WaitGroup> wg;
  wg.add(n);
  std::vector<CancelFunc> cancels;
  cancels.reserve(static_cast<std::size_t>(n));
  const auto t0 = SteadyClock::now();
  for (long i = 0; i < n; ++i) {
    auto [ctx, c] = with_cancel(root);
    cancels.push_back(std::move(c));
    go([&, ctx] {
      started.fetch_add(1, std::memory_order_relaxed);
      (void)ctx.done().recv();
      if (ctx.err() != make_error_code(errc::canceled)) fail("ctx_cancel: wrong err()");
      wg.done();
    });
  }
  while (started.load(std::memory_order_relaxed) < n) this_fiber::yield();
  const auto t1 = SteadyClock::now();
  cancel();
  wg.wait();
  const auto t2 = SteadyClock::now();
  cancels.clear();
  return {"ms", ms(t2 - t1), {{"setup_ms", ms(t1 - t0)}, {"fibers", double(n)}}};
}

const std::map<std::string, std::function<Result()>>& workloads() {
  static const std::map<std::string, std::function<Result()>> w = {
      {"skynet", skynet},
      {"spawn_join", spawn_join},
      {"pingpong", pingpong},
      {"spsc", spsc},
      {"mpmc", mpmc},
      {"select_unbuffered", [] { return select_workload(0); }},
      {"select_buffered", [] { return select_workload(1024); }},
      {"mutex", mutex_workload},
      {"parked_1m", parked},
      {"timers_100k", timers},
      {"ctx_cancel", ctx_cancel},
  };
  return w;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: spindle_compare <workload> --workers N [--scale small|full] [--stats]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  const std::string name = argv[1];
  int workers = 1;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
      workers = std::atoi(argv[++i]);
      if (workers < 1) usage();
    } else if (std::strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
      const std::string s = argv[++i];
      if (s != "small" && s != "full") usage();
      g_small = s == "small";
    } else if (std::strcmp(argv[i], "--stats") == 0) {
      g_stats = true;  // the runtime's counters, to stderr: where a workload's time goes
    } else {
      usage();
    }
  }
  if (name == "switch_floor") {
    std::printf("{\"impl\":\"spindle\",\"workload\":\"switch_floor\",\"unsupported\":true}\n");
    return 0;
  }
  auto it = workloads().find(name);
  if (it == workloads().end()) {
    std::fprintf(stderr, "spindle_compare: unknown workload \"%s\"\n", name.c_str());
    return 2;
  }
  Result r = run(Options{.workers = workers}, [&] {
    Result res = it->second();
    if (g_stats) {
      const RuntimeStats st = runtime_stats();
      std::fprintf(stderr,
                   "stats: spawned %llu, switches %llu, parks %llu, steals %llu, idle sleeps %llu, timers %llu\n",
                   static_cast<unsigned long long>(st.spawned), static_cast<unsigned long long>(st.context_switches),
                   static_cast<unsigned long long>(st.parks), static_cast<unsigned long long>(st.steals),
                   static_cast<unsigned long long>(st.idle_sleeps), static_cast<unsigned long long>(st.timers_fired));
    }
    return res;
  });
  std::string extra;
  for (const auto& [k, v] : r.extra) {
    extra += fmt::format("{}\"{}\":{:.3f}", extra.empty() ? "" : ",", k, v);
  }
  std::printf("{\"impl\":\"spindle\",\"workload\":\"%s\",\"workers\":%d,\"metric\":\"%s\",\"value\":%.3f,\"extra\":{%s}}\n",
              name.c_str(), workers, r.metric, r.value, extra.c_str());
  return 0;
}
