// The execution tracer's hooks, called by the scheduler (see spindle/trace.hpp for the format).
//
// Every call site is guarded by `if (trace_on()) [[unlikely]]`: one relaxed load of a global flag
// and a branch, the whole cost while no trace records. The hooks themselves re-check, under the
// buffer handshake in trace.cpp, that a trace is still recording.
//
// Invariants: a worker's hooks are called only by that worker's thread (its buffer has a single
// writer); hooks never park, never allocate once a buffer exists, and take no runtime lock (they
// may run under any of them: the timer heap's, a channel's).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spindle::detail {

struct Fiber;

extern std::atomic<bool> g_trace_on;
[[nodiscard]] inline bool trace_on() noexcept { return g_trace_on.load(std::memory_order_relaxed); }

// How a fiber's run ended (mirrors AfterSwitch, which this header cannot see).
enum class TraceEnd : std::uint8_t { park, yield, exit, other };

// A worker thread starts its loop (gives it a track even if it never runs a fiber).
void trace_worker_start(int worker) noexcept;
// Worker `worker` switches to `f` / `f` switched back. The end hook runs before after_switch, so
// f's wait reason and site are still those of the park that ended the run.
void trace_run_begin(int worker, const Fiber* f) noexcept;
void trace_run_end(int worker, const Fiber* f, TraceEnd how) noexcept;
// The caller (a fiber, a worker or a plain thread) spawned `f` / made `f` runnable.
void trace_spawn(const Fiber* f) noexcept;
void trace_wake(const Fiber* f) noexcept;
// Worker `thief` took `n` fibers from worker `victim`'s queue.
void trace_steal(int thief, int victim, std::uint32_t n) noexcept;
// The calling fiber renamed itself.
void trace_rename(const Fiber* f) noexcept;
// The timestamp a "timers" slice starts at, and its end: the calling worker fired `fired` timers.
[[nodiscard]] std::int64_t trace_clock() noexcept;
void trace_timers(int worker, std::int64_t begin, std::size_t fired) noexcept;

}  // namespace spindle::detail
