// Shutdown (see shutdown.hpp).
//
// Invariants: hooks_ is frozen once `started` is set (under mu); a hook's fiber writes only its
// own HookResult slot's outcome in `done_results` and then sends its index on `finished`
// (capacity = number of hooks, so it never blocks, even after run() has returned); run()
// reads an outcome only after receiving its index.
#include <spindle/patterns/shutdown.hpp>

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
#include <optional>

#include <spindle/mutex.hpp>

namespace spindle::patterns {

const char* to_string(HookStatus s) noexcept {
  switch (s) {
    case HookStatus::ok: return "ok";
    case HookStatus::failed: return "failed";
    case HookStatus::timed_out: return "timed out";
    case HookStatus::skipped: return "skipped";
  }
  return "unknown";
}

struct Shutdown::State {
  State(const Context& parent, const Clock& c) : clock(c), cc(with_cancel_cause(parent)) {}
  const Clock& clock;
  CancelableContext cc;
  spindle::Mutex mu;
  struct Entry {
    std::string name;
    Hook hook;
    int phase;
  };
  std::vector<Entry> hooks;
  bool started = false;
  std::optional<ShutdownReport> report;  // set when run() has finished
  spindle::Mutex run_mu;                 // serialises run() callers
};

Shutdown::Shutdown(const Context& parent, const Clock* clock)
    : state_(std::make_shared<State>(parent, clock_or_system(clock))) {}

Shutdown::~Shutdown() { trigger(); }

const Context& Shutdown::context() const noexcept { return state_->cc.ctx; }
const Context& Shutdown::context_of(const State& s) noexcept { return s.cc.ctx; }

void Shutdown::trigger_state(State& s, std::error_code cause) noexcept { s.cc.cancel.cancel(cause); }
void Shutdown::trigger(std::error_code cause) noexcept { trigger_state(*state_, cause); }

void Shutdown::add_hook(std::string name, Hook h, int phase) {
  if (!h) throw ConfigError("patterns: Shutdown::on_shutdown: null hook \"" + name + "\"");
  std::lock_guard lock(state_->mu);
  if (state_->started) {
    throw ConfigError("patterns: Shutdown::on_shutdown(\"" + name + "\") after the hooks started running");
  }
  state_->hooks.push_back({std::move(name), std::move(h), phase});
}

ShutdownReport Shutdown::wait_and_run(Duration grace) {
  (void)context().done().recv();
  return run(grace);
}

namespace {

// What a hook's fiber hands back.
struct Outcome {
  std::error_code error;
  std::string what;
  bool threw = false;
  bool in_time = false;  // returned before its context was done (the deadline had not passed)
  Duration took{};
};

}  // namespace

ShutdownReport Shutdown::run(Duration grace) {
  if (grace < Duration::zero()) throw ConfigError("patterns: Shutdown::run: negative grace period");
  const std::shared_ptr<State> st = state_;
  std::lock_guard run_lock(st->run_mu);
  if (st->report) return *st->report;
  trigger();
  {
    std::lock_guard lock(st->mu);
    st->started = true;
  }
  const std::size_t n = st->hooks.size();
  ShutdownReport report;
  report.cause = cause(st->cc.ctx);
  report.hooks.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    report.hooks[i].name = st->hooks[i].name;
    report.hooks[i].phase = st->hooks[i].phase;
  }
  // One deadline for the whole run. Hooks must not see the already-cancelled shutdown context
  // (they would stop at once): their context derives from the shutdown's parent values only.
  ClockContext deadline = timeout_context(without_cancel(st->cc.ctx), grace, st->clock);
  auto outcomes = std::make_shared<std::vector<Outcome>>(n);
  Chan<std::size_t> finished(n == 0 ? 1 : n);

  std::map<int, std::vector<std::size_t>> phases;
  for (std::size_t i = 0; i < n; ++i) phases[st->hooks[i].phase].push_back(i);
  bool out_of_time = false;
  for (auto& [phase, members] : phases) {
    // Past the deadline (noticed in the previous phase, or since): the remaining phases stay
    // `skipped`.
    if (out_of_time || deadline.ctx.err()) break;
    for (std::size_t i : members) {
      spindle::go(SpawnOptions{.name = "shutdown-hook"},
                  [st, outcomes, finished, i, hctx = deadline.ctx] {
        const TimePoint t0 = st->clock.now();
        Outcome o;
        std::exception_ptr error;
        try {
          o.error = st->hooks[i].hook(hctx);
        } catch (...) {
          error = std::current_exception();
        }
        if (error) {
          o.threw = true;
          o.error = make_error_code(errc::hook_failed);
          try {
            std::rethrow_exception(error);
          } catch (const std::exception& e) {
            o.what = e.what();
          } catch (...) {
            o.what = "non-std exception";  // reported as failed with hook_failed
          }
        }
        o.took = st->clock.now() - t0;
        o.in_time = !hctx.err();
        (*outcomes)[i] = std::move(o);
        std::size_t idx = i;
        (void)finished.try_send(idx);  // capacity n: never blocks
      });
      report.hooks[i].status = HookStatus::timed_out;  // until it reports
    }
    std::size_t pending = members.size();
    const Receiver<std::monostate> expired = deadline.ctx.done();
    auto record = [&](std::size_t idx) {
      const Outcome& o = (*outcomes)[idx];
      HookResult& h = report.hooks[idx];
      // A hook that returned only once its context was done gave up: it timed out.
      h.status = !o.in_time ? HookStatus::timed_out : (o.error ? HookStatus::failed : HookStatus::ok);
      h.error = o.error;
      h.what = o.what;
      h.took = o.took;
      --pending;
    };
    while (pending > 0) {
      // Reports already delivered count even if the deadline has passed meanwhile (a select
      // would choose at random between the two).
      if (auto r = finished.try_recv(); r.ok()) {
        record(*r);
        continue;
      }
      std::optional<std::size_t> idx;
      spindle::select(spindle::case_recv(finished, [&](std::optional<std::size_t> v) { idx = v; }),
                      spindle::case_recv(expired));
      if (idx) {
        record(*idx);
        continue;
      }
      // What arrived together with the deadline still counts; later phases are skipped.
      for (auto r = finished.try_recv(); r.ok(); r = finished.try_recv()) record(*r);
      out_of_time = true;
      break;
    }
  }
  st->report = report;
  return report;
}

}  // namespace spindle::patterns
