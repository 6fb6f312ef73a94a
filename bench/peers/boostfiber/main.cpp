// boostfiber-peer: the Boost.Fiber 1.81 side of spindle's side-by-side benchmarks (bench/compare).
//
// Usage: boostfiber-peer <workload> --workers N [--scale small|full] [--launch post|dispatch]
//
// N threads (the main thread is one of them) run boost::fibers::algo::work_stealing with its
// defaults (idle workers spin: suspend=false); one worker runs round_robin (see Runtime). Every
// fiber gets a 16 KiB fixedsize_stack. The
// program runs one workload, checks its own result (a wrong program must not report a number: it
// prints the reason on stderr and exits 1), and prints exactly one JSON line on stdout:
//
//   {"impl":"boostfiber","workload":"skynet","workers":2,"metric":"ms","value":575.3,"extra":{...}}
//
// Workloads Boost.Fiber has no counterpart for (select, context) print
// {"impl":"boostfiber","workload":W,"unsupported":true}. switch_floor measures raw Boost.Context
// (no scheduler), the floor every fiber runtime built on it pays. handoff_probe is not a workload
// but a machine probe for the driver: the cache-line round trip between CPUs 0 and 1.
//
// Definitions and sizes are in bench/peers/README.md; they must match the Go peer and spindle's
// own program.
//
// Build: g++ -std=c++20 -O2 -o boostfiber-peer main.cpp -lboost_fiber -lboost_context -pthread

#include <boost/context/detail/fcontext.hpp>
#include <boost/context/fiber.hpp>
#include <boost/fiber/all.hpp>

#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdarg>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

namespace bf = boost::fibers;
using Clock = std::chrono::steady_clock;
using Extra = std::vector<std::pair<std::string, double>>;

constexpr std::size_t kStackSize = 16 * 1024;

int g_workers = 1;
bool g_small = false;
bool g_launch_set = false;
bf::launch g_launch = bf::launch::post;

struct Result {
  const char* metric;
  double value;
  Extra extra;
};

[[noreturn]] void fail(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char* fmt, ...) {
  std::fputs("boostfiber-peer: CHECK FAILED: ", stderr);
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::fflush(stderr);
  // _Exit: other worker threads are still running fibers; skip static destructors.
  std::_Exit(1);
}

// n at full scale, n/100 (at least 1) with --scale small.
long scaled(long n) { return g_small ? std::max(1L, n / 100) : n; }

double ms_since(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
double ns_per(Clock::time_point a, Clock::time_point b, long n) {
  return std::chrono::duration<double, std::nano>(b - a).count() / double(n);
}

// Current resident set (VmRSS) in KiB: the driver subtracts it from the peak.
double rss_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
  }
  return 0;
}

// A variable the fibers of a workload update while the spawning fiber goes on working, on cache
// lines of its own, as in bench/spindle_compare.cpp (there, on the spawner's stack, it shared a
// line with the temporaries of each spawn: false sharing that the Go peer, whose such variables
// escape to the heap, does not have).
template <class T>
struct alignas(64) OwnLine : T {
  using T::T;
};

// Same pseudo-random sleep durations in every implementation.
std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Spawns a fiber with a 16 KiB stack. Boost's default policy is launch::post (queue the child,
// the parent keeps running); --launch overrides it.
template <class F>
bf::fiber spawn(F&& f, bf::launch policy = bf::launch::post) {
  if (g_launch_set) policy = g_launch;
  return bf::fiber{policy, std::allocator_arg, bf::fixedsize_stack{kStackSize}, std::forward<F>(f)};
}

// The N-thread work-stealing runtime. The constructor returns once every thread has installed
// its scheduler (work_stealing's constructor holds a barrier); helper threads park their main
// fiber on a fiber condition variable and keep running stolen fibers until shutdown().
//
// One worker runs round_robin instead: work_stealing(1) spins forever in pick_next() as soon as
// its ready queue is empty (its victim loop draws a random thread id until it differs from its
// own, and with one thread none does), e.g. while every fiber sleeps.
class Runtime {
 public:
  explicit Runtime(int n) {
    if (n == 1) {
      bf::use_scheduling_algorithm<bf::algo::round_robin>();
      return;
    }
    for (int i = 1; i < n; ++i) {
      threads_.emplace_back([this, n] {
        bf::use_scheduling_algorithm<bf::algo::work_stealing>(n);
        std::unique_lock<bf::mutex> lk(mtx_);
        cv_.wait(lk, [this] { return done_; });
      });
    }
    bf::use_scheduling_algorithm<bf::algo::work_stealing>(n);
  }
  void shutdown() {
    {
      std::unique_lock<bf::mutex> lk(mtx_);
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  std::vector<std::thread> threads_;
  bf::mutex mtx_;
  bf::condition_variable cv_;
  bool done_ = false;
};

// ---------------------------------------------------------------------------------------------
// skynet: 10-ary tree of fibers; each leaf sends its number, each node sums its children.
// As in Boost's own performance/fiber/skynet_* programs: a buffered channel per node (an
// unbuffered push touches the channel after the receiver may have destroyed it), detached
// children, and launch::dispatch unless --launch says otherwise.

using SkyChan = bf::buffered_channel<std::uint64_t>;

void skynet_node(SkyChan& c, std::uint64_t num, std::uint64_t size, std::uint64_t div) {
  if (size == 1) {
    c.push(num);
    return;
  }
  SkyChan rc{16};
  for (std::uint64_t i = 0; i < div; ++i) {
    std::uint64_t sub = num + i * (size / div);
    spawn([&rc, sub, size, div] { skynet_node(rc, sub, size / div, div); }, bf::launch::dispatch)
        .detach();
  }
  std::uint64_t sum = 0;
  for (std::uint64_t i = 0; i < div; ++i) sum += rc.value_pop();
  c.push(sum);
}

Result skynet() {
  std::uint64_t n = scaled(1000000);
  std::uint64_t want = n * (n - 1) / 2;
  SkyChan c{2};
  auto t0 = Clock::now();
  spawn([&c, n] { skynet_node(c, 0, n, 10); }, bf::launch::dispatch).detach();
  std::uint64_t sum = c.value_pop();
  auto t1 = Clock::now();
  if (sum != want) fail("skynet sum %" PRIu64 ", want %" PRIu64, sum, want);
  double fibers = 0;
  for (std::uint64_t s = n; s >= 1; s /= 10) fibers += double(s);
  bool dispatch = !g_launch_set || g_launch == bf::launch::dispatch;
  return {"ms", ms_since(t0, t1), {{"fibers", fibers}, {"dispatch", dispatch ? 1.0 : 0.0}}};
}

// ---------------------------------------------------------------------------------------------
// spawn_join: spawn n trivial fibers, then join them all.

Result spawn_join() {
  long n = scaled(1000000);
  OwnLine<std::atomic<long>> count{0};
  std::vector<bf::fiber> fibers;
  fibers.reserve(n);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i)
    fibers.push_back(spawn([&count] { count.fetch_add(1, std::memory_order_relaxed); }));
  auto t1 = Clock::now();
  for (auto& f : fibers) f.join();
  auto t2 = Clock::now();
  if (count.load() != n) fail("spawn_join ran %ld fibers, want %ld", count.load(), n);
  return {"ns/op",
          ns_per(t0, t2, n),
          {{"spawn_ms", ms_since(t0, t1)}, {"join_ms", ms_since(t1, t2)}, {"fibers", double(n)},
           {"dispatch", g_launch_set && g_launch == bf::launch::dispatch ? 1.0 : 0.0}}};
}

// ---------------------------------------------------------------------------------------------
// pingpong: two fibers bounce a counter over two unbuffered channels.

Result pingpong() {
  long n = scaled(1000000);
  bf::unbuffered_channel<long> ping, pong;
  std::atomic<long> bad{-1};
  auto t0 = Clock::now();
  auto a = spawn([&] {
    for (long i = 0; i < n; ++i) {
      ping.push(i);
      if (pong.value_pop() != i + 1) bad.store(i);
    }
    ping.close();
  });
  auto b = spawn([&] {
    long v;
    while (ping.pop(v) == bf::channel_op_status::success) pong.push(v + 1);
  });
  a.join();
  b.join();
  auto t1 = Clock::now();
  if (bad.load() >= 0) fail("pingpong: wrong reply at round %ld", bad.load());
  return {"ns/op", ns_per(t0, t1, n), {{"round_trips", double(n)}}};
}

// ---------------------------------------------------------------------------------------------
// spsc: one producer, one consumer, buffered channel of capacity 1024 (Boost: a power of two
// that holds 1023); the consumer checks order.

Result spsc() {
  long n = scaled(2000000);
  bf::buffered_channel<long> ch{1024};
  long got = 0, bad = -1;
  auto t0 = Clock::now();
  auto p = spawn([&] {
    for (long i = 0; i < n; ++i) ch.push(i);
    ch.close();
  });
  auto c = spawn([&] {
    long v;
    while (ch.pop(v) == bf::channel_op_status::success) {
      if (v != got && bad < 0) bad = got;
      ++got;
    }
  });
  p.join();
  c.join();
  auto t1 = Clock::now();
  if (bad >= 0 || got != n)
    fail("spsc received %ld messages (first out of order at %ld), want %ld in order", got, bad, n);
  return {"ns/op", ns_per(t0, t1, n), {{"messages", double(n)}, {"capacity", 1024}}};
}

// ---------------------------------------------------------------------------------------------
// mpmc: 4 producers and 4 consumers over one channel of capacity 128 (holds 127). Count and sum
// are checked: every value is received exactly once.

Result mpmc() {
  constexpr long kProducers = 4, kConsumers = 4;
  long n = scaled(2000000) / kProducers * kProducers;
  long per = n / kProducers;
  bf::buffered_channel<long> ch{128};
  std::vector<long> counts(kConsumers), sums(kConsumers);
  std::vector<bf::fiber> producers, consumers;
  auto t0 = Clock::now();
  for (long p = 0; p < kProducers; ++p)
    producers.push_back(spawn([&ch, p, per] {
      for (long i = p * per; i < (p + 1) * per; ++i) ch.push(i);
    }));
  for (long c = 0; c < kConsumers; ++c)
    consumers.push_back(spawn([&, c] {
      long v, cnt = 0, sum = 0;
      while (ch.pop(v) == bf::channel_op_status::success) {
        ++cnt;
        sum += v;
      }
      counts[c] = cnt;
      sums[c] = sum;
    }));
  for (auto& f : producers) f.join();
  ch.close();
  for (auto& f : consumers) f.join();
  auto t1 = Clock::now();
  long cnt = 0, sum = 0;
  for (long c = 0; c < kConsumers; ++c) {
    cnt += counts[c];
    sum += sums[c];
  }
  if (cnt != n || sum != n * (n - 1) / 2)
    fail("mpmc received %ld messages summing to %ld, want %ld summing to %ld", cnt, sum, n,
         n * (n - 1) / 2);
  return {"ns/op", ns_per(t0, t1, n), {{"messages", double(n)}, {"capacity", 128}}};
}

// ---------------------------------------------------------------------------------------------
// mutex: 1,000 fibers each take a fiber mutex 1,000 times to increment one counter.

Result mutex_workload() {
  long fibers = g_small ? 100 : 1000, iters = g_small ? 100 : 1000;
  bf::mutex mu;
  long counter = 0;
  std::vector<bf::fiber> fs;
  fs.reserve(fibers);
  auto t0 = Clock::now();
  for (long f = 0; f < fibers; ++f)
    fs.push_back(spawn([&] {
      for (long i = 0; i < iters; ++i) {
        std::lock_guard<bf::mutex> lk(mu);
        ++counter;
      }
    }));
  for (auto& f : fs) f.join();
  auto t1 = Clock::now();
  if (counter != fibers * iters) fail("mutex counter %ld, want %ld", counter, fibers * iters);
  return {"ns/op", ns_per(t0, t1, fibers * iters),
          {{"fibers", double(fibers)}, {"locks", double(fibers * iters)}}};
}

// ---------------------------------------------------------------------------------------------
// parked_1m: spawn n fibers that each block on one shared channel; once all of them have
// started, close the channel and join them. spawn_ms runs until every fiber reached its wait.

Result parked() {
  long n = scaled(1000000);
  double base = rss_kb();
  bf::buffered_channel<int> gate{2};
  OwnLine<std::atomic<long>> started{0}, woke{0};
  std::vector<bf::fiber> fibers;
  fibers.reserve(n);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i)
    fibers.push_back(spawn([&] {
      started.fetch_add(1, std::memory_order_relaxed);
      int v;
      if (gate.pop(v) == bf::channel_op_status::closed) woke.fetch_add(1, std::memory_order_relaxed);
    }));
  while (started.load(std::memory_order_relaxed) < n) boost::this_fiber::yield();
  auto t1 = Clock::now();
  gate.close();
  for (auto& f : fibers) f.join();
  auto t2 = Clock::now();
  if (woke.load() != n) fail("parked: %ld fibers woke by close, want %ld", woke.load(), n);
  double spawn_ms = ms_since(t0, t1), wake_ms = ms_since(t1, t2);
  return {"ms", spawn_ms + wake_ms,
          {{"spawn_ms", spawn_ms}, {"wake_ms", wake_ms}, {"fibers", double(n)},
           {"base_rss_kb", base}}};
}

// ---------------------------------------------------------------------------------------------
// timers_100k: n fibers each sleep d_i = 1000 + splitmix64(i) % 9001 microseconds; lateness is
// how long after its deadline each one ran again.

Result timers() {
  long n = scaled(100000);
  std::vector<std::int64_t> late(n);
  std::vector<bf::fiber> fibers;
  fibers.reserve(n);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i)
    fibers.push_back(spawn([&late, i] {
      auto d = std::chrono::microseconds(1000 + splitmix64(std::uint64_t(i)) % 9001);
      auto s = Clock::now();
      boost::this_fiber::sleep_for(d);
      late[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - s - d).count();
    }));
  for (auto& f : fibers) f.join();
  auto t1 = Clock::now();
  std::sort(late.begin(), late.end());
  double sum = 0;
  for (auto l : late) {
    if (l < 0) fail("timers: a fiber woke %" PRId64 " ns before its deadline", -l);
    sum += double(l);
  }
  std::int64_t p99 = late[(n * 99 + 99) / 100 - 1];
  return {"ms", ms_since(t0, t1),
          {{"mean_late_us", sum / double(n) / 1e3}, {"p99_late_us", double(p99) / 1e3},
           {"max_late_us", double(late.back()) / 1e3}, {"fibers", double(n)}}};
}

// ---------------------------------------------------------------------------------------------
// switch_floor: a raw Boost.Context round trip (two switches), no scheduler. The primary figure
// is jump_fcontext, what every fiber runtime on Boost.Context pays at least; the extra is the
// public boost::context::fiber API.

namespace bctx = boost::context::detail;

void floor_entry(bctx::transfer_t t) {
  for (;;) {
    ++*static_cast<std::uint64_t*>(t.data);
    t = bctx::jump_fcontext(t.fctx, t.data);
  }
}

Result switch_floor() {
  long n = scaled(10000000);
  constexpr std::size_t kSize = 64 * 1024;
  auto stack = std::make_unique<char[]>(kSize);
  std::uint64_t count = 0;
  bctx::fcontext_t c = bctx::make_fcontext(stack.get() + kSize, kSize, floor_entry);
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) c = bctx::jump_fcontext(c, &count).fctx;
  auto t1 = Clock::now();
  if (count != std::uint64_t(n)) fail("switch_floor: %" PRIu64 " round trips, want %ld", count, n);

  // The same through boost::context::fiber (resume = one switch each way).
  namespace ctx = boost::context;
  long resumed = 0;
  ctx::fiber f{std::allocator_arg, ctx::fixedsize_stack{kSize}, [&resumed](ctx::fiber&& m) {
                 for (;;) {
                   ++resumed;
                   m = std::move(m).resume();
                 }
                 return std::move(m);
               }};
  auto t2 = Clock::now();
  for (long i = 0; i < n; ++i) f = std::move(f).resume();
  auto t3 = Clock::now();
  if (resumed != n) fail("switch_floor: fiber API resumed %ld times, want %ld", resumed, n);
  // f still holds the suspended lambda; destroying it unwinds its stack (forced_unwind).
  return {"ns/op", ns_per(t0, t1, n),
          {{"fiber_api_ns", ns_per(t2, t3, n)}, {"round_trips", double(n)}}};
}

// ---------------------------------------------------------------------------------------------
// handoff_probe: two threads pinned to CPUs 0 and 1 bounce one cache line; ns per round trip.
// Tells the driver whether the two vCPUs are "near" (~55 ns) or "far" (~350 ns) right now.

Result handoff_probe() {
  long n = scaled(200000);
  alignas(64) std::atomic<long> line{0};
  auto pin = [](int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
  };
  std::atomic<bool> pinned{true};
  std::thread other([&] {
    if (!pin(1)) pinned = false;
    for (long i = 0; i < n; ++i) {
      while (line.load(std::memory_order_acquire) != 2 * i + 1) {
      }
      line.store(2 * i + 2, std::memory_order_release);
    }
  });
  if (!pin(0)) pinned = false;
  auto t0 = Clock::now();
  for (long i = 0; i < n; ++i) {
    line.store(2 * i + 1, std::memory_order_release);
    while (line.load(std::memory_order_acquire) != 2 * i + 2) {
    }
  }
  auto t1 = Clock::now();
  other.join();
  return {"ns/op", ns_per(t0, t1, n), {{"pinned", pinned ? 1.0 : 0.0}, {"round_trips", double(n)}}};
}

// ---------------------------------------------------------------------------------------------

std::string json_number(double v) {
  char buf[64];
  if (v == double(static_cast<long long>(v)) && v < 1e15 && v > -1e15)
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  else
    std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

void print_result(const std::string& name, const Result& r) {
  std::string out = "{\"impl\":\"boostfiber\",\"workload\":\"" + name +
                    "\",\"workers\":" + std::to_string(g_workers) + ",\"metric\":\"" + r.metric +
                    "\",\"value\":" + json_number(r.value) + ",\"extra\":{";
  for (std::size_t i = 0; i < r.extra.size(); ++i) {
    if (i) out += ",";
    out += "\"" + r.extra[i].first + "\":" + json_number(r.extra[i].second);
  }
  out += "}}\n";
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

[[noreturn]] void usage() {
  std::fputs(
      "usage: boostfiber-peer <workload> --workers N [--scale small|full] "
      "[--launch post|dispatch]\n",
      stderr);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  std::string name = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--workers" && i + 1 < argc) {
      g_workers = std::atoi(argv[++i]);
      if (g_workers < 1) usage();
    } else if (a == "--scale" && i + 1 < argc) {
      std::string s = argv[++i];
      if (s != "small" && s != "full") usage();
      g_small = s == "small";
    } else if (a == "--launch" && i + 1 < argc) {
      std::string s = argv[++i];
      if (s != "post" && s != "dispatch") usage();
      g_launch_set = true;
      g_launch = s == "post" ? bf::launch::post : bf::launch::dispatch;
    } else {
      usage();
    }
  }

  // Workloads with no Boost.Fiber counterpart: no select, no context.
  static const char* const kUnsupported[] = {"select_unbuffered", "select_buffered", "ctx_cancel"};
  for (const char* u : kUnsupported) {
    if (name == u) {
      std::printf("{\"impl\":\"boostfiber\",\"workload\":\"%s\",\"unsupported\":true}\n", u);
      return 0;
    }
  }
  // These run without the fiber scheduler.
  if (name == "switch_floor") {
    print_result(name, switch_floor());
    return 0;
  }
  if (name == "handoff_probe") {
    if (std::thread::hardware_concurrency() < 2) {
      std::puts("{\"impl\":\"boostfiber\",\"workload\":\"handoff_probe\",\"unsupported\":true}");
      return 0;
    }
    print_result(name, handoff_probe());
    return 0;
  }

  static const std::map<std::string, Result (*)()> kWorkloads = {
      {"skynet", skynet},           {"spawn_join", spawn_join}, {"pingpong", pingpong},
      {"spsc", spsc},               {"mpmc", mpmc},             {"mutex", mutex_workload},
      {"parked_1m", parked},        {"timers_100k", timers},
  };
  auto it = kWorkloads.find(name);
  if (it == kWorkloads.end()) {
    std::fprintf(stderr, "boostfiber-peer: unknown workload \"%s\"\n", name.c_str());
    return 2;
  }
  Runtime rt(g_workers);
  Result r = it->second();
  rt.shutdown();
  print_result(name, r);
  return 0;
}
