// Shutdown: graceful shutdown as a context plus hooks run under a deadline, with a report of
// what did not finish.
//
//   Shutdown sd;
//   sd.trigger_on(stop_requests);                  // any Receiver: a channel an admin endpoint
//                                                  // closes, a timer, a signal channel
//   sd.on_shutdown("http", [&](const Context& c) { return server.shutdown(c); });
//   sd.on_shutdown("db", [&](const Context& c) { return db.close(c); }, /*phase=*/1);
//   go([&] { serve(sd.context()); });              // servers stop when the context is done
//   ShutdownReport r = sd.wait_and_run(30s);       // parks until triggered, then runs the hooks
//   for (auto& h : r.unfinished()) log("did not finish: {}", h);
//
// The seed turned SIGINT/SIGTERM into a channel with signal.Notify and gave http.Server 30 s to
// Shutdown. The runtime has no signal facility yet, so the OS part is not here: trigger() is
// the entry point (thread-safe, callable from any thread, including a dedicated thread that
// waits for signals with sigwait), and trigger_on(Receiver<T>) accepts any channel as the
// trigger, so a signal channel plugs in unchanged once the runtime provides one.
//
// Semantics:
//  * context() is a child of the parent context, cancelled by trigger(cause) (cause() of it is
//    `cause`, canceled by default), by the parent, or by trigger_on's channel yielding a value
//    or closing. trigger is idempotent: the first cause wins;
//  * hooks are registered with a name and a phase; run(grace) runs phase after phase in
//    ascending order; the hooks of one phase run concurrently, each in its own fiber, with a
//    context that is cancelled when `grace` has passed on the clock (one deadline for the whole
//    run, counted from its start);
//  * the report lists every hook, in registration order, with its outcome: ok, failed (it
//    returned an error, or threw: errc::hook_failed with the exception's message), timed_out
//    (still running at the deadline, or returned only once its context was done: one still
//    running is left running with its context cancelled, and the Shutdown's state stays alive
//    until it returns), or skipped (its phase never started because the deadline had passed).
//    Nothing is dropped without being reported;
//  * wait_and_run(grace) parks until the context is done, then run(grace). run() triggers
//    first if nobody has; it runs the hooks once (later calls return the same report).
// Registering a hook once run() has started, a negative grace, and a null hook throw
// ConfigError. Destroying a Shutdown triggers it (its context never outlives it) but does not
// run the hooks.
//
// Thread-safety: trigger() from any thread or fiber; everything else from fibers, concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

enum class HookStatus : std::uint8_t { ok, failed, timed_out, skipped };
[[nodiscard]] const char* to_string(HookStatus s) noexcept;

struct HookResult {
  std::string name;
  int phase = 0;
  HookStatus status = HookStatus::skipped;
  std::error_code error{};   // failed: the hook's error (errc::hook_failed if it threw)
  std::string what{};        // failed by an exception: its what()
  Duration took{};           // ok/failed: how long it ran (on the clock)
};

struct ShutdownReport {
  std::error_code cause;            // why shutdown happened (cause of context())
  std::vector<HookResult> hooks;    // in registration order
  [[nodiscard]] bool all_ok() const noexcept {
    for (const auto& h : hooks) {
      if (h.status != HookStatus::ok) return false;
    }
    return true;
  }
  // Names of the hooks that did not complete successfully.
  [[nodiscard]] std::vector<std::string> unfinished() const {
    std::vector<std::string> out;
    for (const auto& h : hooks) {
      if (h.status != HookStatus::ok) out.push_back(h.name);
    }
    return out;
  }
};

class Shutdown {
 public:
  using Hook = std::function<std::error_code(const Context&)>;

  explicit Shutdown(const Context& parent = background(), const Clock* clock = nullptr);
  Shutdown(const Shutdown&) = delete;
  Shutdown& operator=(const Shutdown&) = delete;
  ~Shutdown();

  // Cancelled when shutdown begins.
  [[nodiscard]] const Context& context() const noexcept;
  [[nodiscard]] bool triggered() const noexcept { return context().err() != std::error_code{}; }

  // Registers a hook (f(ctx) returning void or std::error_code).
  template <class F>
  void on_shutdown(std::string name, F f, int phase = 0) {
    if constexpr (std::is_invocable_r_v<std::error_code, F&, const Context&> &&
                  !std::is_void_v<std::invoke_result_t<F&, const Context&>>) {
      add_hook(std::move(name), Hook(std::move(f)), phase);
    } else {
      static_assert(std::is_invocable_v<F&, const Context&>, "on_shutdown: hook is f(const Context&)");
      add_hook(std::move(name), Hook([g = std::move(f)](const Context& c) mutable -> std::error_code {
        g(c);
        return {};
      }), phase);
    }
  }

  // Begins shutdown (see the file comment). Never blocks; any thread.
  void trigger(std::error_code cause = {}) noexcept;

  // Triggers when r yields a value or is closed. Spawns a watcher fiber that ends when the
  // context is done.
  template <class T>
  void trigger_on(Receiver<T> r) {
    spindle::go(SpawnOptions{.name = "shutdown-trigger"}, [st = state_, r]() {
      const Receiver<std::monostate> done = context_of(*st).done();
      Select<2> sel;
      const int on_r = sel.recv(r);
      (void)sel.recv(done);
      if (sel.wait() == on_r) trigger_state(*st, {});
    });
  }
  template <class T>
  void trigger_on(const Chan<T>& c) {
    trigger_on(Receiver<T>(c));
  }

  // Runs the hooks (see the file comment); parks until they finish or `grace` runs out.
  [[nodiscard]] ShutdownReport run(Duration grace);
  // Parks until the context is done, then run(grace).
  [[nodiscard]] ShutdownReport wait_and_run(Duration grace);

  struct State;

 private:
  void add_hook(std::string name, Hook h, int phase);
  static const Context& context_of(const State& s) noexcept;
  static void trigger_state(State& s, std::error_code cause) noexcept;

  std::shared_ptr<State> state_;
};

}  // namespace spindle::patterns
