// The signals that spindle::signal::notify relays, which the runtime's threads keep blocked so
// that the kernel hands them to the relay thread (net/signal.cpp), the one thread leaving them
// unblocked.
//
// Why: the kernel gives a process-directed signal to any thread not blocking it, the main thread
// first, which is worker 0 while run() runs. Under ThreadSanitizer, a handler for a signal that
// arrives outside an intercepted call is deferred until that thread next enters one, and an idle
// worker asleep in a raw futex system call may not for as long as nothing wakes it: a SIGTERM
// sent to an idle worker 0 reached no subscriber for 15 s in a TSan run of the graceful server
// test. Without sanitizers it spares the workers' system calls an EINTR.
//
// The set is process-wide, as dispositions are; a thread can change only its own mask, so each
// worker applies the set when it starts and again before each idle sleep (refresh(), one load
// when nothing changed). Whoever adds a signal then wakes the idle workers
// (Scheduler::wake_all_idle_workers) so that none sleeps with it unblocked.
#pragma once

#include <csignal>

#include <atomic>
#include <cstdint>

namespace spindle::detail {

// Bit sig-1 for signal sig (1..64).
extern std::atomic<std::uint64_t> g_relayed_signals;

// Adds or removes `sig` (1..64) from the set.
void add_relayed_signal(int sig) noexcept;
void remove_relayed_signal(int sig) noexcept;

// One runtime thread's share: its own mask plus the set, while it runs as a runtime thread.
class RelayedSignalMask {
 public:
  void apply() noexcept;    // saves the calling thread's mask, then blocks the set
  void restore() noexcept;  // puts the saved mask back
  // Blocks the set again if it changed since apply() or the last refresh(). seq_cst: a waker
  // that adds a signal and then wakes this thread either is seen here or wakes its sleep.
  void refresh() noexcept {
    if (g_relayed_signals.load(std::memory_order_seq_cst) != applied_) [[unlikely]] block_set();
  }

 private:
  void block_set() noexcept;

  sigset_t saved_{};
  std::uint64_t applied_ = 0;
};

}  // namespace spindle::detail
