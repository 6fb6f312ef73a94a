// The one place where spindle switches stacks.
//
// Every switch (worker -> fiber, fiber -> worker, a fiber's first entry and its last exit) goes
// through switch_to(), which wraps Boost.Context's jump_fcontext with the AddressSanitizer and
// ThreadSanitizer fiber annotations in sanitizer builds (Debian's Boost.Context is the fcontext
// build and does not annotate). See ../shared/SEMANTICS.md, "Sanitizers need our own annotations".
#pragma once

#include <cstddef>

#include "os/prefetch.hpp"

namespace spindle::detail {

// Entry point of a new context; receives the `data` given to the first switch_to() into it.
// It must never return: it leaves by a final switch_to(..., from_exits = true).
using EntryFn = void (*)(void* data);

// A suspended execution context: a fiber's, or a worker thread's own (the scheduler's) stack.
struct SwitchContext {
  void* fctx = nullptr;          // boost::context::detail::fcontext_t
  const void* stack_lo = nullptr;  // for ASan: the stack this context runs on
  std::size_t stack_size = 0;
  void* tsan_fiber = nullptr;    // for TSan: its fiber handle
  void* asan_fake_stack = nullptr;
  EntryFn entry = nullptr;       // for a context made by make_context, until its first run
};

// Makes [lo, hi) of a recycled stack plain memory again before the runtime writes into it
// (under ASan the previous fiber's frames may have left it poisoned; a no-op otherwise).
void prepare_stack_top(char* lo, char* hi) noexcept;
// Prepares `ctx` to run `entry` on the stack [lo, hi) at its first switch.
void make_context(SwitchContext& ctx, char* lo, char* hi, EntryFn entry);
// Captures the calling thread as a context (its fctx is filled by the first switch away).
void init_thread_context(SwitchContext& ctx);
// Starts fetching what resuming `ctx` reads first: the registers saved on its stack and the
// innermost frames above them. A fiber woken after a long wait resumes on a cold stack, and the
// switch stalls on those lines (a 100k-context cancel spent a fifth of its time in
// jump_fcontext); fetched a few hundred nanoseconds ahead, they cost little. Not for a context
// that has never run: its top lines were just written by the spawning worker, and fetching them
// for reading before this one writes them cost spawn+join at 2 workers 4%.
inline void prefetch_saved_frames(const SwitchContext& ctx) noexcept {
  if (ctx.entry != nullptr) return;
  constexpr int kLines = 5;  // measured: 3 lines took 8% off that cancel, 5 another 4%
  for (int i = 0; i < kLines; ++i) prefetch_line(static_cast<const char*>(ctx.fctx) + 64 * i);
}

// Saves the current execution into `from`, resumes `to`, passing it `data`. Returns the `data`
// passed by whoever switches back into `from`. `from_exits` says `from` will never be resumed
// (a finished fiber), so its sanitizer state can be dropped.
void* switch_to(SwitchContext& from, SwitchContext& to, void* data, bool from_exits = false);
// Releases sanitizer state of a context that finished (never the running one).
void destroy_context(SwitchContext& ctx);

}  // namespace spindle::detail
