// Looking inside a running program: fiber dumps, counters, deadlock reports.
//
//   spindle::dump_fibers(std::cerr);   // every fiber: id, name, state, wait reason, call sites
//   auto s = spindle::runtime_stats();  // counters, readable at any time from any thread
//
// The dump is Go's goroutine dump (SIGQUIT, pprof's goroutine profile) for spindle. It is taken
// without stopping the world: each fiber's line is consistent, the set of lines is a snapshot
// under the registry lock.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

#include <spindle/errors.hpp>

namespace spindle {

struct RuntimeStats {
  int workers = 0;
  std::int64_t live_fibers = 0;        // spawned and not finished, the main fiber included
  std::uint64_t spawned = 0;           // fibers spawned since run() started
  std::uint64_t context_switches = 0;  // switches from a worker into a fiber
  std::uint64_t steals = 0;            // successful steals from another worker's queue
  std::uint64_t parks = 0;             // blocking waits that suspended a fiber
  std::uint64_t timers_fired = 0;
  std::uint64_t idle_sleeps = 0;       // times a worker went to sleep for lack of work
};

// Counters of the running runtime (all zero outside one). Thread-safe.
[[nodiscard]] RuntimeStats runtime_stats() noexcept;

// Writes one entry per live fiber:
//   fiber 7 "worker-3" [chan receive, 1520 ms] on 0x6020000001f0
//       blocked at src/app.cpp:42 in void consume(...)
//       spawned at src/app.cpp:17 in int main()
// Thread-safe; prints "no runtime is running" outside one.
void dump_fibers(std::ostream& out);
[[nodiscard]] std::string fiber_dump();

// Fibers abandoned by run() calls (alive when their main fiber returned; see runtime.hpp), in
// total since the process started, and the dump of those of the most recent such run(). The
// leak checks of <spindle/testing/leak_check.hpp> are built on these.
[[nodiscard]] std::int64_t abandoned_fibers_total() noexcept;
[[nodiscard]] std::string last_abandoned_dump();

// With Options::stack_high_water: the deepest stack use seen per spawn site, over the fibers
// that finished so far in the running (or last) runtime, one line per site:
//   src/app.cpp:17  fibers 1000  max 3712 of 65536 bytes
[[nodiscard]] std::string stack_high_water_report();

// Thrown by run() when Options::on_deadlock is throw_from_run and every fiber is blocked for good.
class DeadlockError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

}  // namespace spindle
