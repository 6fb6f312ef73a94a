// What a blocking primitive needs to honour a Context, with only a forward declaration of it.
//
// Templates such as Chan<T>::recv(const Context&) include this header instead of context.hpp
// (which includes chan.hpp for done()), and wait like this:
//
//   if (auto ec = detail::context_err(ctx)) return ec;           // already done: fail fast
//   detail::Interrupt in = detail::context_interrupt(ctx);
//   ParkOptions opts{.unlock = ..., .unlock_arg = ...,
//                    .deadline = std::min(my_deadline, detail::context_deadline(ctx)),
//                    .interrupt = in.self != nullptr ? &in : nullptr};
//   WakeReason r = park(w, site, opts);
//   // canceled: the context is done (its err is set); timeout at the context deadline: ditto.
//   // Either way report detail::context_wait_error(ctx), after removing `w` from the
//   // primitive's queue.
//
// or, for a primitive with an internal `WakeReason detail_op(deadline, interrupt)` form, simply
// `return detail::context_wait(ctx, [&](TimePoint d, const Interrupt* in) { ... });`
//
// Contract of the Interrupt (see detail/park.hpp):
//  * arm(w) registers `w` in the context's waiter list; when the context is done (cancel,
//    deadline, or an ancestor's) it claims `w` with WakeReason::canceled and readies it, under
//    the context's lock. If the context is done already, arm claims and readies `w` at once. A
//    claim that loses (the primitive claimed first) does nothing.
//  * disarm(w) removes `w` under the context's lock: after it returns the context never touches
//    `w` again. park() calls disarm itself once the waiter is resumed.
//  * Neither parks. The Context passed to context_interrupt must outlive the wait (it does when
//    the caller holds a `const Context&` parameter for the duration of the call).
//  * For a context that can never be cancelled (background(), todo(), without_cancel), arm and
//    disarm do nothing.
#pragma once

#include <system_error>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>

namespace spindle {
class Context;
}

namespace spindle::detail {

// The interrupt that ends a park when `ctx` is done. Thread-safe.
[[nodiscard]] Interrupt context_interrupt(const Context& ctx) noexcept;

// The deadline a wait on `ctx` must give park() besides the interrupt: kNoDeadline when the
// context has no deadline or when its own timer will fire the interrupt at the deadline (the
// normal case inside a running runtime); otherwise the context's deadline, which the wait must
// notice itself (the deadline was set while no runtime was running, see context.hpp). After a
// WakeReason::timeout at this deadline, context_err(ctx) reports errc::deadline_exceeded.
[[nodiscard]] TimePoint context_deadline(const Context& ctx) noexcept;

// ctx.err(): empty while the context is not done, then errc::canceled or
// errc::deadline_exceeded, stable afterwards.
[[nodiscard]] std::error_code context_err(const Context& ctx) noexcept;

// What a context-aware wait that ended with WakeReason::canceled or ::timeout (at the
// context_deadline) reports: ctx.err(), which is set by then.
[[nodiscard]] std::error_code context_wait_error(const Context& ctx) noexcept;

// The whole protocol for a primitive whose internal form is
// `WakeReason op(TimePoint deadline, const Interrupt* in)` (notified = done, anything else =
// gave up and left no trace): a context that is already done fails at once, even if the
// operation could complete without blocking (as x/sync's semaphore and Go's rate.Wait do, so
// the outcome does not depend on timing); otherwise an empty code when op succeeded, else
// ctx.err().
template <class Op>
[[nodiscard]] std::error_code context_wait(const Context& ctx, Op&& op) {
  if (std::error_code ec = context_err(ctx)) return ec;
  const Interrupt in = context_interrupt(ctx);
  const WakeReason r = static_cast<Op&&>(op)(context_deadline(ctx), in.self != nullptr ? &in : nullptr);
  if (r == WakeReason::notified) return {};
  return context_wait_error(ctx);
}

}  // namespace spindle::detail
