#include "diag/watchdog.hpp"

#include <csignal>
#include <cstdio>
#include <cstring>

#include <spindle/debug.hpp>

#include "diag/report.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

std::atomic<bool> g_sigquit{false};
std::atomic<bool> g_sigquit_installed{false};

void on_sigquit(int) { g_sigquit.store(true, std::memory_order_relaxed); }

std::mutex g_abandoned_mu;
std::string g_abandoned_dump;
std::atomic<std::int64_t> g_abandoned_total{0};

constexpr auto kMaxPeriod = std::chrono::milliseconds(250);
constexpr auto kSigquitPoll = std::chrono::milliseconds(50);

}  // namespace

Watchdog::Watchdog(Scheduler& s) : sched_(s), seen_(s.workers_.size()) {
  if (s.opts_.dump_on_sigquit && !g_sigquit_installed.exchange(true)) std::signal(SIGQUIT, &on_sigquit);
  if (s.opts_.watchdog_threshold.count() == 0 && !s.opts_.dump_on_sigquit) return;
  thread_ = std::thread([this] { loop(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::loop() {
  const auto threshold = sched_.opts_.watchdog_threshold;
  auto period = threshold.count() > 0 ? std::min<std::chrono::milliseconds>(threshold / 4, kMaxPeriod)
                                      : kSigquitPoll;
  if (sched_.opts_.dump_on_sigquit) period = std::min<std::chrono::milliseconds>(period, kSigquitPoll);
  if (period.count() == 0) period = std::chrono::milliseconds(1);
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    if (threshold.count() > 0) check_workers();
    if (sched_.opts_.dump_on_sigquit && g_sigquit.exchange(false, std::memory_order_relaxed)) {
      const std::string dump = format_fiber_dump(sched_);
      std::fprintf(stderr, "SIGQUIT: fiber dump\n%s", dump.c_str());
      std::fflush(stderr);
    }
  }
}

void Watchdog::check_workers() {
  const auto now = std::chrono::steady_clock::now();
  for (std::size_t i = 0; i < sched_.workers_.size(); ++i) {
    Worker& w = *sched_.workers_[i];
    Seen& seen = seen_[i];
    Fiber* f = w.current_.load(std::memory_order_relaxed);
    const std::uint64_t switches = w.switches_.load(std::memory_order_relaxed);
    if (f == nullptr || f != seen.fiber || switches != seen.switches) {
      seen = Seen{switches, f, now, false};
      continue;
    }
    if (seen.reported || now - seen.since < sched_.opts_.watchdog_threshold) continue;
    seen.reported = true;
    // Copy what describes it under the registry's lock, and only if it is still alive (its
    // record may be reused the moment it finishes); print outside the lock.
    bool alive = false;
    unsigned long long id = 0;
    char name[sizeof f->name] = {};
    std::source_location site;
    sched_.registry_.for_each_live([&](Fiber* g) {
      if (g != f) return;
      alive = true;
      id = g->id;
      std::memcpy(name, g->name, sizeof name);
      site = g->spawn_site;
    });
    if (!alive) continue;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - seen.since).count();
    std::fprintf(stderr,
                 "spindle: watchdog: worker %zu has run fiber %llu \"%s\" for %lld ms without it "
                 "blocking or yielding (spawned at %s:%u). Fibers are cooperative: call "
                 "this_fiber::yield() in long loops, and keep blocking system calls off the workers "
                 "(spindle::blocking). Its queued fibers and timers run on the other workers.\n",
                 i, id, name, static_cast<long long>(ms), site.file_name(),
                 static_cast<unsigned>(site.line()));
    std::fflush(stderr);
  }
}

void record_abandoned(Scheduler& s) {
  const std::int64_t n = s.registry_.live();
  // After a deadlock the report (and DeadlockError) already said which fibers are stuck.
  if (n <= 0 || s.deadlocked_.load(std::memory_order_acquire)) return;
  std::string dump = format_fiber_dump(s);
  std::lock_guard lock(g_abandoned_mu);
  g_abandoned_dump = std::move(dump);
  g_abandoned_total.fetch_add(n, std::memory_order_relaxed);
}

}  // namespace spindle::detail

namespace spindle {

std::int64_t abandoned_fibers_total() noexcept {
  return detail::g_abandoned_total.load(std::memory_order_relaxed);
}

std::string last_abandoned_dump() {
  std::lock_guard lock(detail::g_abandoned_mu);
  return detail::g_abandoned_dump;
}

}  // namespace spindle
