// The runtime: start it with run(), spawn fibers with go().
//
//   int main() {
//     return spindle::run([] {
//       spindle::WaitGroup wg;
//       for (int i = 0; i < 10; ++i) wg.go([i] { fmt::print("hello from {}\n", i); });
//       wg.wait();
//       return 0;
//     });
//   }
//
// run() starts N worker threads (Options::workers, else $SPINDLE_WORKERS, else the core count),
// runs `main_fn` as the main fiber on them, and returns its result (or rethrows its exception)
// once it finishes. As in Go, the program's lifetime is the main fiber's: fibers still parked or
// runnable when it returns are abandoned without being resumed (their destructors do not run);
// their stacks are freed. Join what you spawn (WaitGroup, ErrGroup) to avoid that. One runtime
// runs at a time per process; run() may be called again after it returns.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

#include <spindle/detail/spawn.hpp>

namespace spindle {

struct Options {
  int workers = 0;                         // 0: $SPINDLE_WORKERS, else hardware concurrency
  std::size_t default_stack_size = 64 * 1024;  // usable bytes per fiber unless SpawnOptions says
  // Stacks with a guard page (an overflow faults at once and is reported). Past this many live
  // guarded stacks, new fibers get unguarded stacks from contiguous slabs (the kernel's default
  // vm.max_map_count of 65530 allows only ~32k guarded stacks); those are checked with a canary
  // at every switch instead. 0 disables guard pages entirely.
  std::size_t max_guarded_stacks = 8192;
  // Resume every woken fiber on a different worker than the one it parked on (a test mode that
  // shakes out thread-affinity bugs: a thread_local or errno held across a park).
  bool force_migration = false;
  // When every fiber is blocked and nothing can wake one (no runnable fiber, no pending timer,
  // no I/O wait, no blocking call in flight) for `deadlock_grace` (a thread outside the runtime
  // could still send on a channel meanwhile), the runtime prints
  // "fatal error: all fibers are asleep - deadlock!" and a dump of every fiber, then:
  //   exit:            ends the process with status kDeadlockExitCode (2), as Go does;
  //   throw_from_run:  run() throws DeadlockError (the blocked fibers are abandoned);
  //   ignore:          keeps sleeping (a program woken only by plain threads).
  enum class OnDeadlock { exit, throw_from_run, ignore };
  OnDeadlock on_deadlock = OnDeadlock::exit;
  std::chrono::milliseconds deadlock_grace{1000};
  // The watchdog reports (on stderr, once per stall) a fiber that holds a worker longer than
  // this without blocking or yielding. Zero disables it.
  std::chrono::milliseconds watchdog_threshold{1000};
  // Print the fiber dump on stderr when the process receives SIGQUIT (Go does, then exits;
  // spindle goes on running).
  bool dump_on_sigquit = false;
  // Measure how deep each fiber's stack went (stack_high_water_report() in spindle/debug.hpp),
  // to size stacks from data. Paints every new stack, so every page of it becomes resident: a
  // diagnostic mode, not for production.
  bool stack_high_water = false;
};

inline constexpr int kDeadlockExitCode = 2;

namespace detail {
void run_main(const Options& opts, const SpawnOptions& main_opts, const Callable& fn);
}

// Runs `fn` as the main fiber of a new runtime and returns its result. Blocks the calling thread
// (which becomes one of the workers) until `fn` returns; rethrows what `fn` throws.
// Throws RuntimeError if a runtime is already running in this process.
template <class F>
auto run(const Options& opts, F&& fn) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  std::exception_ptr error;
  std::conditional_t<std::is_void_v<R>, char, std::optional<R>> result{};
  auto body = [&] {
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn);
      } else {
        result.emplace(std::invoke(fn));
      }
    } catch (...) {
      error = std::current_exception();
    }
  };
  detail::run_main(opts, SpawnOptions{.name = "main"}, detail::make_callable(body));
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<R>) return std::move(*result);
}

template <class F>
auto run(F&& fn) -> std::invoke_result_t<F&> {
  return run(Options{}, std::forward<F>(fn));
}

// Spawns a detached fiber running fn(args...). Arguments are decay-copied (moved when rvalues),
// as std::thread does. Thread-safe; may be called from a fiber or, while a runtime is running,
// from any thread. An exception escaping fn ends the process with the fiber's name and spawn
// site (Go's unrecovered panic): join with WaitGroup::go or ErrGroup::go to handle errors.
// Returns the new fiber's id.
template <class F, class... Args>
std::uint64_t go(const SpawnOptions& opts, F&& fn, Args&&... args) {
  auto body = [f = std::decay_t<F>(std::forward<F>(fn)),
               tup = std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)]() mutable {
    std::apply(f, std::move(tup));
  };
  return detail::spawn(opts, detail::make_callable(body));
}

// The common form, go(fn): records the caller as the spawn site.
template <class F>
  requires(!std::is_same_v<std::decay_t<F>, SpawnOptions>)
std::uint64_t go(F&& fn, std::source_location where = std::source_location::current()) {
  return go(SpawnOptions{.where = where}, std::forward<F>(fn));
}

// go(fn, args...): a default argument cannot follow a pack, so this form records no call site
// of its own; pass SpawnOptions{} (whose `where` defaults to its construction site) for one.
template <class F, class A0, class... Args>
  requires(!std::is_same_v<std::decay_t<F>, SpawnOptions> &&
           !std::is_same_v<std::decay_t<A0>, std::source_location>)
std::uint64_t go(F&& fn, A0&& a0, Args&&... args) {
  return go(SpawnOptions{}, std::forward<F>(fn), std::forward<A0>(a0), std::forward<Args>(args)...);
}

// Number of worker threads of the running runtime (0 when none runs).
[[nodiscard]] int num_workers() noexcept;
// Number of live fibers (spawned and not yet finished), including the main fiber.
[[nodiscard]] std::int64_t num_fibers() noexcept;

}  // namespace spindle
