// event_processor: watches a directory with inotify (through spindle's netpoller, net::PollFd)
// and runs an action once per burst of changes to a file, when the file has been quiet for the
// quiet period (patterns::Debouncer, one per file).
//
// Shape (one fiber each; nothing here blocks a worker thread):
//
//   inotify fd --PollFd::read--> event loop --call(seq)--> Debouncer per file (trailing edge)
//                                                              | quiet period passed
//                                                              v
//                               action workers <--Chan<Burst>-- fn(seq)
//                                 | hash (blocking pool) or --exec (blocking pool)
//                                 v
//                               Config::on_action(ActionResult)
//
// Invariants:
//  * Only the event loop touches the map of debouncers (creates, calls, drops): no lock.
//  * A file's debouncer is called with a per-file sequence number; its trailing invocation
//    carries the last one of the burst, and sets `delivered` to it after the burst was handed
//    to the action workers. An entry is dropped (idle) only when delivered == the last sequence
//    number called: then no window is open and no invocation is queued, so dropping it (which
//    would discard a queued invocation) loses nothing. Sweeps run at the start of every batch.
//  * Names starting with '.' or ending with '~' (editor swap and backup files) and
//    subdirectories are ignored, but reported to Config::on_event like every other event (a
//    test uses a ".sync" file as an in-order marker in the event stream).
//  * Shutdown (ctx done): the event loop stops, every debouncer is destroyed (pending bursts
//    are dropped and counted), then the burst channel is closed and the action workers drain
//    it (reporting canceled for what they no longer run) and exit; run() returns after that.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/context.hpp>
#include <spindle/patterns/clock.hpp>

namespace event_processor {

using spindle::Duration;

// What one action did.
struct ActionResult {
  std::string file;               // name inside the watched directory
  std::string path;               // dir/name
  std::uint64_t events = 0;       // inotify events folded into this burst
  bool exists = false;            // the file was there when the action ran
  bool regular = false;           // ... and was a regular file (only those are hashed)
  std::uint64_t size = 0;         // bytes (regular files)
  std::string sha256;             // hex digest of the content (default action, regular files)
  bool exec = false;              // --exec ran instead of the default action
  int exit_status = 0;            // --exec: the exit code, or 128 + signal
  Duration took{};                // how long the action ran
  std::error_code err;            // why the action failed (canceled at shutdown, I/O, spawn)
};

struct Config {
  std::string dir;                                  // the directory to watch (not recursive)
  Duration quiet_period = std::chrono::milliseconds(200);
  std::string exec;                                 // empty: hash; else /bin/sh -c CMD sh PATH
  int action_workers = 4;                           // actions running at once
  const spindle::patterns::Clock* clock = nullptr;  // the debouncers' clock; null: the system's
  // Every inotify event as read (name, mask), ignored ones included, on the event loop fiber.
  std::function<void(std::string_view name, std::uint32_t mask)> on_event;
  // Every finished action, on an action worker fiber (several may call it at once).
  std::function<void(const ActionResult&)> on_action;
  // Warnings (queue overflow, an unusable event); default: stderr.
  std::function<void(std::string_view)> log;
};

struct Stats {
  std::uint64_t events = 0;           // inotify events read
  std::uint64_t ignored = 0;          // of which ignored (dotfiles, backups, subdirectories)
  std::uint64_t bursts = 0;           // debounced bursts handed to the action workers
  std::uint64_t actions = 0;          // actions that finished (including failed ones)
  std::uint64_t dropped = 0;          // bursts still pending at shutdown
  std::uint64_t overflows = 0;        // IN_Q_OVERFLOW: the kernel dropped events
  std::uint64_t live_debouncers = 0;  // files with a debouncer now
  std::uint64_t max_live_debouncers = 0;
};

class Processor {
 public:
  explicit Processor(Config cfg);
  ~Processor();
  Processor(const Processor&) = delete;
  Processor& operator=(const Processor&) = delete;

  // Creates the inotify instance and watches cfg.dir. Returns ENOENT/ENOTDIR/EACCES (system
  // category) for a directory it cannot watch, or ConfigError-like std::errc::invalid_argument
  // for a non-positive quiet period or worker count. Must be called in a fiber.
  [[nodiscard]] std::error_code open();
  // Processes events until ctx is done (returns {}) or the watch fails: the directory was
  // deleted or moved (ENOENT), a read error. Parks the calling fiber; returns after the action
  // workers have finished (see the shutdown invariant above). Call open() first.
  [[nodiscard]] std::error_code run(const spindle::Context& ctx);

  // A consistent-enough snapshot (each counter is atomic). Thread-safe.
  [[nodiscard]] Stats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// The default action on one file: existence, size and SHA-256 of a regular file, read on the
// blocking pool. Never opens a FIFO or device for reading (O_NONBLOCK + fstat first).
[[nodiscard]] ActionResult describe_file(const spindle::Context& ctx, std::string name, std::string path);
// --exec: runs `/bin/sh -c cmd sh path` on the blocking pool, waits for it.
[[nodiscard]] ActionResult exec_for_file(const spindle::Context& ctx, std::string cmd, std::string name,
                                         std::string path);

}  // namespace event_processor
