// Heartbeat and supervisor: a worker pulses while it makes progress; a supervisor restarts it
// when the pulses stop ("Concurrency in Go": heartbeats and the steward).
//
//   std::error_code ec = supervise(ctx, {.timeout = 5s, .max_restarts = 10},
//       [&](const Context& ctx, Heartbeat& hb) -> std::error_code {
//         for (;;) {
//           auto job = jobs.recv_or_done(ctx) ...;     // work...
//           hb.beat();                                   // ...and say so
//         }
//       });
//
// Semantics:
//  * supervise() runs worker(ctx_i, hb_i) in a fiber (incarnation i = 1, 2, ...); ctx_i is a
//    child of ctx, cancelled when the incarnation is abandoned;
//  * Heartbeat::beat() never blocks (a pulse on a channel of capacity 1; beats between two
//    looks of the supervisor coalesce); the supervisor expects one at least every `timeout`
//    (on its clock), counted from the incarnation's start and then from the latest pulse;
//  * no pulse for `timeout`: the incarnation is "missed": its context is cancelled and a new
//    incarnation starts (after restart_backoff, if any). The old one is not waited for at that
//    point (it may be wedged), but supervise() waits for every incarnation before returning,
//    so a worker must honour its context eventually;
//  * the worker returning an empty code ends supervision with success; returning an error is
//    a failure that also restarts it (Erlang's permanent child), unless restart_on_error is
//    false (then supervise returns that error); an exception escaping the worker stops
//    supervision: every incarnation is cancelled and joined, then it is rethrown;
//  * after max_restarts restarts (a negative value: unlimited), the next miss or failure ends
//    supervision with errc::too_many_restarts; ctx done ends it with ctx.err().
//  * on_event (optional) is called on the supervisor's fiber for every started / pulse /
//    missed / failed event, in order: metrics, logs, and tests synchronise on it.
// The seed's doWorkWithHeartbeat pulsed on a ticker from the same loop that did the work; it
// leaves "who watches the pulses" to the reader. This is that watcher.
//
// Settings: timeout > 0, restart_backoff >= 0, else ConfigError.
// Thread-safety: a Heartbeat may be used from any fiber; supervise blocks its caller. Each
// incarnation runs its own copy of `worker` (an abandoned one may still be running).
#pragma once

#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

// What a supervised worker pulses with.
class Heartbeat {
 public:
  explicit Heartbeat(Chan<char> pulses) noexcept : pulses_(std::move(pulses)) {}
  // Signals progress. Never blocks; beats the supervisor has not seen yet coalesce.
  void beat() noexcept { (void)pulses_.try_send('b'); }

 private:
  Chan<char> pulses_;
};

enum class SupervisorEventKind : std::uint8_t { started, pulse, missed, failed };

struct SupervisorEvent {
  SupervisorEventKind kind;
  int incarnation;          // 1 for the first worker, then 2, 3, ...
  std::error_code error{};  // failed: what the worker returned
};

struct SupervisorSettings {
  Duration timeout{};              // the longest gap between pulses (> 0)
  int max_restarts = -1;           // < 0: unlimited
  Duration restart_backoff{};      // pause before each restart (on the clock)
  bool restart_on_error = true;    // a worker returning an error is restarted
  const Clock* clock = nullptr;    // null: system_clock()
  std::function<void(const SupervisorEvent&)> on_event{};
};

template <class F>
[[nodiscard]] std::error_code supervise(const Context& ctx, SupervisorSettings s, F worker) {
  static_assert(std::is_invocable_v<F&, const Context&, Heartbeat&>,
                "supervise: the worker is called as worker(const Context&, Heartbeat&)");
  static_assert(std::is_copy_constructible_v<F>, "supervise: each incarnation gets a copy of the worker");
  if (s.timeout <= Duration::zero()) throw ConfigError("patterns: supervise: timeout must be positive");
  if (s.restart_backoff < Duration::zero()) {
    throw ConfigError("patterns: supervise: negative restart_backoff");
  }
  const Clock& clock = clock_or_system(s.clock);
  auto emit = [&](SupervisorEvent e) {
    if (s.on_event) s.on_event(e);
  };
  // An incarnation's exit: its outcome, or the exception that escaped it. Written by the
  // incarnation before it signals `exited` (the channel orders the write before the read).
  struct Exit {
    std::error_code ec{};
    std::exception_ptr error{};
  };

  WaitGroup all;  // every incarnation ever started: joined before returning
  const Receiver<std::monostate> done = ctx.done();
  std::optional<CancelFunc> current;  // the running incarnation's cancel
  std::error_code result;
  std::exception_ptr rethrow;
  int restarts = 0;
  for (int inc = 1;; ++inc) {
    auto child = with_cancel(ctx);
    Chan<char> pulses(1);
    Chan<char> exited(1);
    auto box = std::make_shared<Exit>();
    current.emplace(std::move(child.cancel));
    // Each incarnation gets its own copy of the worker: a wedged one may still be running.
    all.go([w = worker, cctx = child.ctx, pulses, exited, box]() mutable {
      Heartbeat hb(pulses);
      Exit& e = *box;
      try {
        if constexpr (std::is_void_v<std::invoke_result_t<F&, const Context&, Heartbeat&>>) {
          w(cctx, hb);
        } else {
          e.ec = w(cctx, hb);
        }
      } catch (...) {
        e.error = std::current_exception();
      }
      (void)exited.try_send('x');  // capacity 1, sent once
    });
    emit({SupervisorEventKind::started, inc});

    enum class Why { none, missed, failed, finished, canceled } why = Why::none;
    Exit exit;
    TimePoint last = clock.now();
    while (why == Why::none) {
      const TimePoint now = clock.now();
      bool pulse = false;
      {
        ClockTimer t = clock.timer(last + s.timeout > now ? last + s.timeout - now : Duration::zero());
        Select<4> sel;
        const int on_pulse = sel.recv(pulses);
        const int on_exit = sel.recv(exited);
        const int on_timer = sel.recv(t.C());
        (void)sel.recv(done);
        const int k = sel.wait();
        if (k == on_pulse) {
          pulse = true;
        } else if (k == on_exit) {
          exit = std::move(*box);
          why = exit.error || !exit.ec ? Why::finished : Why::failed;
        } else if (k == on_timer) {
          why = Why::missed;
        } else {
          why = Why::canceled;
        }
      }  // the timer is stopped before anything else happens
      if (pulse) {
        last = clock.now();
        emit({SupervisorEventKind::pulse, inc});
      }
    }
    (*current)();  // the incarnation is over for us: cancel its context
    if (why == Why::finished) {
      rethrow = exit.error;
      result = {};
      break;
    }
    if (why == Why::canceled) {
      result = ctx.err();
      break;
    }
    emit(why == Why::missed ? SupervisorEvent{SupervisorEventKind::missed, inc}
                            : SupervisorEvent{SupervisorEventKind::failed, inc, exit.ec});
    if (why == Why::failed && !s.restart_on_error) {
      result = exit.ec;
      break;
    }
    if (s.max_restarts >= 0 && restarts >= s.max_restarts) {
      result = make_error_code(errc::too_many_restarts);
      break;
    }
    ++restarts;
    if (std::error_code ec = sleep_for(clock, ctx, s.restart_backoff)) {
      result = ec;
      break;
    }
  }
  all.wait();  // every incarnation has returned (they were all cancelled)
  if (rethrow) std::rethrow_exception(rethrow);
  return result;
}

}  // namespace spindle::patterns
