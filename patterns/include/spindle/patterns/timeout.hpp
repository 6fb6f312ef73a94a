// Timeout with cleanup: run an operation under a deadline; return at the deadline even if the
// operation has not, and hand a result that arrives too late to a cleanup function.
//
//   Result<Conn> c = run_with_timeout(ctx, 2s,
//       [&](const Context& ctx) { return dial(ctx, addr); },      // sees the cancelled ctx
//       [](Conn&& late) { late.close(); });                        // a late success is cleaned
//
// The seed's operationWithTimeout returned at the deadline and leaked what the operation
// produced afterwards (an open connection, a file) and gave no way to know when the operation
// itself was gone. Here:
//  * op(ctx') runs in a fiber of its own, ctx' = timeout_context(ctx, d, clock): ctx' is done
//    at the deadline (or with ctx), so a context-aware op stops promptly;
//  * the caller gets op's outcome if it arrives first; otherwise spindle::errc::deadline_exceeded
//    (the timeout) or ctx.err() (the caller's context was cancelled). An outcome counts only if
//    op returned before its context was done (checked under one lock with the caller's
//    decision): exactly one of "the caller got the result" and "cleanup got the result"
//    happens, never both, never neither (for a successful late value);
//  * a value that arrives after the caller has given up goes to cleanup(V&&) in op's fiber;
//    a late error needs no cleanup;
//  * TimeoutOptions::join = true makes the caller wait, after the deadline, until op has
//    returned (structured: no fiber outlives the call; the late value still goes to cleanup).
//    With join = false (the default, as the seed) op's fiber finishes on its own once it
//    notices its cancelled context.
// An exception from op is rethrown to the caller when the caller is still waiting; one that
// escapes an abandoned op ends the process, as an unrecovered panic in a Go goroutine would
// (there is nobody left to hand it to; an op that can fail that way should catch it).
// Thread-safety: op and cleanup run in op's fiber. Needs a running runtime.
#pragma once

#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/mutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

struct TimeoutOptions {
  const Clock* clock = nullptr;  // the deadline's clock; null: system_clock()
  bool join = false;             // after a timeout, wait for op to return before returning
};

// The default cleanup: nothing (the late value is destroyed).
struct NoCleanup {
  template <class V>
  void operator()(V&&) const noexcept {}
};

template <class F, class Cleanup = NoCleanup>
auto run_with_timeout(const Context& ctx, Duration d, F op, Cleanup cleanup = {},
                      TimeoutOptions opts = {}) {
  using Out = decltype(detail::invoke_outcome(op, std::declval<const Context&>()));
  struct State {
    spindle::Mutex mu;
    bool abandoned = false;           // the caller gave up; late values go to cleanup
    std::optional<Out> out;           // op's outcome, if it arrived while the caller waited
    std::exception_ptr error;         // op's exception, likewise
    Chan<char> ready{1};              // op finished (outcome or exception stored, or cleaned)
    Chan<char> exited{1};             // op's fiber is about to end (for join)
  };
  auto s = std::make_shared<State>();
  ClockContext tc = timeout_context(ctx, d, clock_or_system(opts.clock));
  spindle::go(SpawnOptions{.name = "run_with_timeout"},
              [s, op = std::move(op), cleanup = std::move(cleanup), octx = tc.ctx]() mutable {
    std::optional<Out> out;
    std::exception_ptr error;
    try {
      out.emplace(detail::invoke_outcome(op, octx));
    } catch (...) {
      error = std::current_exception();
    }
    bool late;
    {
      std::lock_guard lock(s->mu);
      // Late: the caller gave up, or the context was already done when op returned (op most
      // likely returned *because* of it). Either way the caller reports the timeout, so the
      // value is cleanup's. Deciding here, under the lock, makes the outcome deterministic.
      // An exception is handed to the caller whenever it is still there to take it.
      late = s->abandoned || (octx.err() && !error);
      if (!late) {
        s->out = std::move(out);
        s->error = error;
      }
    }
    if (late) {
      if (error) std::rethrow_exception(error);  // nobody to hand it to: Go's unrecovered panic
      if constexpr (!std::is_same_v<Out, std::error_code>) {
        if (out && out->ok()) cleanup(std::move(**out));
      }
    }
    (void)s->ready.try_send('r');
    (void)s->exited.try_send('x');
  });

  {
    const Receiver<std::monostate> done = tc.ctx.done();
    Select<2> sel;
    (void)sel.recv(s->ready);
    (void)sel.recv(done);
    (void)sel.wait();
  }
  // Whichever woke us: if op stored an outcome it counts; otherwise (the context is done, or op
  // finished late and handed its value to cleanup) the caller gives up now.
  std::error_code why;
  {
    std::lock_guard lock(s->mu);
    if (!s->out && !s->error) {
      s->abandoned = true;
      why = timed_out(tc.ctx) && !ctx.err() ? make_error_code(spindle::errc::deadline_exceeded)
                                             : (ctx.err() ? ctx.err() : tc.ctx.err());
      if (!why) why = make_error_code(spindle::errc::deadline_exceeded);  // unreachable guard
    }
  }
  if (why) {
    tc.cancel();  // op sees its context done even if only the caller's ctx fired
    if (opts.join) (void)s->exited.recv();
    return Out(why);
  }
  // The outcome is stored (op finished before or just as the deadline passed).
  std::exception_ptr error;
  std::optional<Out> out;
  {
    std::lock_guard lock(s->mu);
    error = std::move(s->error);
    out = std::move(s->out);
  }
  if (error) std::rethrow_exception(error);
  return std::move(*out);
}

}  // namespace spindle::patterns
