// Signals as channel values: Go's os/signal Notify and Stop.
//
//   auto sigs = spindle::signal::notify({SIGINT, SIGTERM});
//   int sig = *sigs.recv();              // parks until SIGINT or SIGTERM arrives
//   spindle::signal::stop(sigs);
//
// How signals get here (a design that needs no cooperation from other threads): notify()
// installs a handler (sigaction, SA_RESTART | SA_ONSTACK) for each signal. The handler, which
// may run on any thread, only sets the signal's bit in a pending mask and writes a byte to a
// self-pipe (both async-signal-safe). A process-wide relay thread, started on first use, blocks
// on that pipe and delivers each pending signal to every channel subscribed to it, with
// try_send: like Go, delivery never blocks, so a receiver that falls behind loses signals
// (a buffer of 1 suffices for "a signal came"). Signals of one number arriving together may be
// coalesced into one value, as the kernel itself does for standard signals.
// Rejected: signalfd and sigwait, which only work if the signal is blocked in *every* thread
// (worker and pool threads already exist, and libraries start their own), else the kernel
// delivers it to a thread that has it unblocked and runs the default action.
//
// When the last channel of a signal is stopped, the disposition it had before the first
// notify() is restored (SIG_DFL for SIGINT: the next one ends the process again).
// System calls interrupted by a handler are restarted (SA_RESTART) where the kernel allows.
//
// The deadlock detector: a fiber waiting only on a notified channel is not reported as a
// deadlock (a signal can still come), as in Go: each subscription made inside a runtime counts
// as an outside wake-up source of that runtime until stop().
//
// Thread-safety: notify and stop may be called from any fiber or thread, concurrently.
#pragma once

#include <cstddef>
#include <initializer_list>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>

namespace spindle::signal {

namespace detail {
void notify(Sender<int> ch, std::initializer_list<int> sigs);
void stop(spindle::detail::ChanCore* ch);
}  // namespace detail

// Relays the given signals to `ch` from now on (Go's signal.Notify). Calling it again for the
// same channel adds signals. Throws spindle::Panic for a nil channel, a number outside 1..64,
// SIGKILL or SIGSTOP (which cannot be caught), and SIGSEGV, SIGBUS, SIGFPE and SIGILL (the
// runtime reports faults itself; they cannot be handled as values).
inline void notify(Sender<int> ch, std::initializer_list<int> sigs) { detail::notify(std::move(ch), sigs); }

// A new buffered channel (capacity >= 1) receiving the given signals.
[[nodiscard]] inline Receiver<int> notify(std::initializer_list<int> sigs, std::size_t capacity = 1) {
  Chan<int> ch(capacity == 0 ? 1 : capacity);
  detail::notify(ch, sigs);
  return ch;
}

// Stops relaying signals to the channel (Go's signal.Stop). When it returns, no more values are
// sent to it. Unknown channels are ignored. Closing a notified channel without stop() also
// ends its subscription (at the next signal for it).
inline void stop(const Receiver<int>& ch) { detail::stop(ch.detail_core()); }
inline void stop(const Sender<int>& ch) { detail::stop(ch.detail_core()); }
inline void stop(const Chan<int>& ch) { detail::stop(ch.detail_core()); }

// Go's signal.NotifyContext: a child of `parent` that is cancelled when one of `sigs` arrives
// (err canceled, cause std::errc::interrupted), when the parent is done, or by the returned
// cancel, which is Go's stop: it also stops relaying the signals (restoring their previous
// disposition once nobody else wants them). A fiber of the runtime relays them until the
// context is done, so call it inside spindle::run and always cancel (the CancelFunc does on
// destruction).
//
//   auto [ctx, stop] = spindle::signal::notify_context(spindle::background(), {SIGINT, SIGTERM});
//   serve(ctx);  // returns once Ctrl-C cancels ctx
[[nodiscard]] CancelableContext notify_context(const Context& parent, std::initializer_list<int> sigs);

}  // namespace spindle::signal
