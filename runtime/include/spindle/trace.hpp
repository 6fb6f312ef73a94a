// Execution traces: what every worker ran, when, and why it stopped (Go's runtime/trace).
//
//   spindle::trace::start("app.trace.json");
//   ...                                   // the program runs as usual
//   auto s = spindle::trace::stop();       // writes the file; open it in ui.perfetto.dev
//
// The file is Chrome Trace Event JSON, one track per worker ("worker 0", "worker 1", ...) and one
// for threads outside the runtime. On a worker's track:
//   * a slice per run of a fiber, named after it ("ping #12", or "fiber #12" when unnamed), from
//     the switch to it until it switched away; args: fiber id, how it ended ("park", "yield",
//     "exit") and, for a park, the wait reason ("chan receive", "sleep", ...), the call site that
//     blocked and the object waited on;
//   * instants: "spawn" (args: the new fiber, its spawn site), "wake" (args: the fiber woken and
//     the fiber that woke it, 0 for the scheduler), "steal" (args: the victim worker and how many
//     fibers were taken);
//   * a "timers" slice whenever the worker fired due timers (args: how many).
// Flow arrows connect each spawn and each wake to the slice where that fiber next ran, so "who
// woke whom" reads as an arrow from the waker's slice to the woken one's.
//
// Cost: when no trace is recording, each hook is one relaxed load of a global flag and a branch
// not taken. While recording, a worker appends fixed-size records (56 bytes) to its own buffer
// (no lock, no allocation) and reads the clock twice per fiber run; threads outside the runtime
// append to one small buffer under a mutex. Memory is bounded: each buffer holds
// Options::events_per_worker records (allocated at start, committed by the kernel only as it
// fills); events past that are dropped and counted, and the count is written into the file
// ("otherData": {"dropped_events": N}). Timestamps are real (steady clock) microseconds since
// start(), also inside synctest::run, whose virtual clock does not move while fibers run.
//
// Thread-safety: start() and stop() may be called from any thread or fiber, inside or outside a
// running runtime; a trace may span several run() calls. At most one trace records at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace spindle::trace {

struct Options {
  // Records each worker's buffer holds; further events are dropped (and counted).
  std::size_t events_per_worker = std::size_t{1} << 20;
  // Records for threads outside the runtime (spawns and wakes from plain threads, main before
  // run(), the netpoller's helpers).
  std::size_t events_outside = std::size_t{1} << 16;
};

struct Summary {
  std::string path;
  std::size_t events = 0;       // records written (before flows and metadata are added)
  std::uint64_t dropped = 0;    // records lost to full buffers
};

// Starts recording. The file is created (truncated) now, so a bad path fails here, and written
// by stop(). Throws RuntimeError if a trace is already recording or the file cannot be opened.
void start(const std::string& path, const Options& opts = {});

// Stops recording, writes the JSON file and closes it. Returns what was written. Blocks the
// caller while it writes (it does not park: call it where a short blocking write is acceptable).
// Throws RuntimeError if no trace is recording or the write fails.
Summary stop();

// True while a trace is recording.
[[nodiscard]] bool recording() noexcept;

}  // namespace spindle::trace
