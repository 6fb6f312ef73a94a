// Fiber dumps, counters and the deadlock report.
#include <cstdio>
#include <ostream>
#include <sstream>

#include <fmt/format.h>

#include <spindle/debug.hpp>

#include "diag/report.hpp"
#include "os/futex.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {

std::string format_fiber_dump(Scheduler& s) {
  std::size_t count = 0;
  std::string fibers;
  s.registry_.for_each_live([&](Fiber* f) {
    ++count;
    std::string& out = fibers;
    const WaitReason reason = f->wait_reason.load(std::memory_order_relaxed);
    out += fmt::format("fiber {} \"{}\" [{}", f->id, f->name, to_string(reason));
    if (reason != WaitReason::none) {
      // Since its worker's scheduling round before it parked (Worker::round_ticks_).
      const Clock::duration waited{Clock::now().time_since_epoch().count() -
                                   f->wait_since.load(std::memory_order_relaxed)};
      out += fmt::format(", {} ms", std::chrono::duration_cast<std::chrono::milliseconds>(waited).count());
      if (const void* obj = f->wait_object.load(std::memory_order_relaxed)) out += fmt::format("] on {}", obj);
      else out += "]";
      const std::source_location at = f->wait_site.load(std::memory_order_relaxed);
      out += fmt::format("\n    blocked at {}:{} in {}", at.file_name(), at.line(), at.function_name());
    } else {
      out += "]";
    }
    out += fmt::format("\n    spawned at {}:{} in {}\n", f->spawn_site.file_name(), f->spawn_site.line(),
                       f->spawn_site.function_name());
  });
  return fmt::format("{} fiber(s), {} worker(s)\n", count, s.workers_.size()) + fibers;
}

bool Scheduler::check_deadlock(Worker& w) {
  if (opts_.on_deadlock == Options::OnDeadlock::ignore) return false;
  auto quiet = [this] {
    Netpoller* np = netpoller_.load(std::memory_order_acquire);
    return nidle_.load(std::memory_order_seq_cst) == static_cast<int>(workers_.size()) &&
           global_empty() && timers_.next() == kNoDeadline && (np == nullptr || np->pending() == 0) &&
           external_waits_.load(std::memory_order_seq_cst) == 0 &&
           registry_.live() > 0 && !stopping_.load(std::memory_order_seq_cst);
  };
  if (!quiet()) return false;
  auto switches = [this] {
    std::uint64_t n = 0;
    for (auto& wk : workers_) n += wk->switches_.load(std::memory_order_relaxed);
    return n;
  };
  const std::uint64_t before = switches();
  // Grace period: a plain thread outside the runtime may still hold a channel and send.
  const TimePoint until = Clock::now() + opts_.deadlock_grace;
  while (w.wake_word_.load(std::memory_order_seq_cst) == 0 && Clock::now() < until) {
    futex_wait(w.wake_word_, 0, until);
  }
  if (w.wake_word_.load(std::memory_order_seq_cst) != 0 || !quiet() || switches() != before) return false;
  if (deadlocked_.exchange(true, std::memory_order_seq_cst)) return false;
  const std::string dump = format_fiber_dump(*this);
  std::fprintf(stderr, "fatal error: all fibers are asleep - deadlock!\n\n%s", dump.c_str());
  std::fflush(stderr);
  if (opts_.on_deadlock == Options::OnDeadlock::exit) std::_Exit(kDeadlockExitCode);
  stop();
  return true;
}

}  // namespace spindle::detail

namespace spindle {

RuntimeStats runtime_stats() noexcept {
  RuntimeStats r;
  detail::Scheduler* s = detail::current_scheduler();
  if (s == nullptr) return r;
  r.workers = static_cast<int>(s->workers_.size());
  r.live_fibers = s->registry_.live();
  r.spawned = s->registry_.spawned();
  for (auto& w : s->workers_) {
    r.context_switches += w->switches_.load(std::memory_order_relaxed);
    r.parks += w->parks_.load(std::memory_order_relaxed);
  }
  r.steals = s->steals_.load(std::memory_order_relaxed);
  r.timers_fired = s->timers_fired_.load(std::memory_order_relaxed);
  r.idle_sleeps = s->idle_sleeps_.load(std::memory_order_relaxed);
  return r;
}

std::string fiber_dump() {
  detail::Scheduler* s = detail::current_scheduler();
  if (s == nullptr) return "no runtime is running\n";
  return detail::format_fiber_dump(*s);
}

void dump_fibers(std::ostream& out) { out << fiber_dump(); }

}  // namespace spindle
