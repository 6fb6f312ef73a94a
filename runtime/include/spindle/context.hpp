// Context: Go's context package. A cancellation signal, a deadline and request-scoped values,
// carried down a tree of contexts and honoured by every blocking call that takes one.
//
//   auto [ctx, cancel] = spindle::with_timeout(spindle::background(), 100ms);
//   // cancel() runs when `cancel` goes out of scope: a forgotten `defer cancel()` cannot leak.
//   if (auto ec = spindle::this_fiber::sleep_for(ctx, 1s)) {
//     // ec == spindle::errc::deadline_exceeded
//   }
//
// Every blocking call takes a context the same way, and reports a cancelled wait as ctx.err():
//   this_fiber::sleep_for(ctx, d)          std::error_code
//   ch.send(ctx, v) / ch.recv(ctx)         std::error_code / RecvResult with status canceled
//   wg.wait(ctx), sem.acquire(ctx, n), mu.lock(ctx), cond.wait(lock, ctx)   std::error_code
//   select(..., case_recv(ctx.done(), handler))
// A context that is already done fails such a call at once (even if it could complete without
// blocking); a wait that fails leaves no registration behind; a cancelled wait never also
// completed (a value is never both delivered and reported cancelled). Primitives build these
// overloads on detail/context_fwd.hpp.
//
// The tree (src/context/node.hpp has the invariants):
//  * A Context is a cheap copyable handle (one shared_ptr) to an immutable node; capture it by
//    value. A default-constructed Context is background().
//  * A cancelable node (with_cancel, with_deadline and their variants) registers with its nearest
//    cancelable ancestor; cancelling a node cancels every descendant synchronously (before cancel
//    returns, their err() is set, their waiters are woken, their stop_tokens are requested and
//    their done() channels are closed) and unregisters it from its parent, so long-lived parents
//    do not accumulate children. A child created under a parent that is already done is done at
//    once, with the parent's err and cause.
//  * Values and without_cancel nodes are not cancelable themselves: their done-ness is their
//    nearest cancelable ancestor's (or never, for without_cancel and the roots).
//
// Err and Cause (Go's table; first cancellation that reaches a context wins, then stable):
//   how the context became done                      err()               cause()
//   cancel() / cancel({})                              canceled            canceled
//   cancel(cause) (with_cancel_cause)                  canceled            cause
//   its deadline passed (with_deadline/with_timeout)   deadline_exceeded   deadline_exceeded
//   its deadline passed (with_deadline_cause, cause)   deadline_exceeded   cause
//   manual cancel of a deadline context                canceled            canceled
//   an ancestor became done first                      the ancestor's      the ancestor's
//   not done (or never cancelable)                     {}                  {}
//
// Deadlines are timers on the runtime's timer heap: the context is cancelled (in a short-lived
// fiber of its own, as Go's time.AfterFunc does) when its deadline passes. A deadline set while
// no runtime is running has no timer: it is noticed lazily, by err()/cause() and by
// context-aware waits (which wake at the deadline), but a done() receiver alone does not see it
// until one of those (or a cancel) marks the context done. A timer armed in one run of the
// runtime is not carried into the next: such a context also falls back to the lazy check.
//
// Memory ordering: everything a goroutine did before calling cancel (or before the deadline's
// timer fired) happens-before err() returning non-empty, before a woken context-aware wait
// returns, before a receive from done() returning because of the close, and before a
// stop_callback registered on stop_token() runs.
//
// Lifetime: nodes are reference-counted; a Context, a CancelFunc and a descendant each keep a
// node (and so its ancestors) alive. Values live as long as the node that binds them.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <source_location>
#include <stop_token>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

#include <spindle/chan.hpp>
#include <spindle/clock.hpp>
#include <spindle/detail/context_fwd.hpp>
#include <spindle/error.hpp>

namespace spindle {

// A typed key for with_value/value. Keys are compared by address (Go compares interface
// values; an unexported key type is Go's idiom for "nobody else can collide"): declare one
// object per key, e.g. `inline constexpr spindle::ContextKey<std::string> kRequestId{"req-id"};`.
// Not copyable, so that a copy cannot silently become a different key.
template <class T>
struct ContextKey {
  constexpr ContextKey(const char* n = "") noexcept : name(n) {}  // NOLINT: implicit for `{"x"}`
  ContextKey(const ContextKey&) = delete;
  ContextKey& operator=(const ContextKey&) = delete;
  const char* name;  // for humans (dumps), not for identity
};

class Context;

namespace detail {
struct ContextNode;
struct AfterFuncState;
struct ContextAccess;

// A type-erased function for after_func.
struct AfterFuncBody {
  virtual ~AfterFuncBody() = default;
  virtual void run() = 0;
};

[[nodiscard]] const void* context_value(const Context& ctx, const void* key) noexcept;
[[nodiscard]] Context make_value_context(const Context& parent, const void* key, void* value,
                                         void (*destroy)(void*) noexcept);
[[nodiscard]] std::shared_ptr<AfterFuncState> register_after_func(
    const Context& ctx, std::unique_ptr<AfterFuncBody> body);
[[nodiscard]] bool stop_after_func(AfterFuncState& state) noexcept;

// Introspection for tests and dumps.
// Registrations (child contexts and after_funcs) on ctx's nearest cancelable node.
[[nodiscard]] std::size_t context_child_count(const Context& ctx) noexcept;
// Waiters (parked context-aware waits) registered on ctx's nearest cancelable node.
[[nodiscard]] std::size_t context_waiter_count(const Context& ctx) noexcept;
// Context nodes alive in the process (every with_* creates one).
[[nodiscard]] std::int64_t live_context_nodes() noexcept;
}  // namespace detail

class Context {
 public:
  // background(): never done, no deadline, no values.
  Context() noexcept = default;

  // Empty while the context is not done; then errc::canceled or errc::deadline_exceeded, never
  // changing afterwards (Go's Err). Non-blocking, thread-safe.
  [[nodiscard]] std::error_code err() const noexcept;

  // A channel that is closed when this context is done (Go's Done), for select and for
  // `ctx.done().recv()`. Never-cancelable contexts (background(), todo(), without_cancel and
  // their value children) return the nil channel, which is never ready (as Go's nil Done).
  // Created on first use, then the same channel every time. Thread-safe; may allocate.
  [[nodiscard]] Receiver<std::monostate> done() const;

  // The time at which the context will be cancelled by a deadline, if any (its own, or an
  // ancestor's when that is earlier). Non-blocking, thread-safe.
  [[nodiscard]] std::optional<TimePoint> deadline() const noexcept;

  // The value bound to `key` by the nearest with_value towards the root, or nullptr. The
  // pointer stays valid while this Context (or any context derived from it) is alive.
  // Non-blocking, thread-safe; the value itself is shared, immutable data.
  template <class T>
  [[nodiscard]] const T* value(const ContextKey<T>& key) const noexcept {
    return static_cast<const T*>(detail::context_value(*this, &key));
  }

  // A std::stop_token that is stop-requested when this context is done (C++20 interop: hand
  // it to std::jthread-style code or a std::stop_callback). stop_possible() is false for a
  // context that can never be cancelled. Callbacks registered on it run in the thread/fiber
  // that cancelled the context, after the locks of the context tree are released (or at
  // registration if already done). Allocates the stop state on first use.
  [[nodiscard]] std::stop_token stop_token() const;

  // Same node (not "equivalent contexts").
  friend bool operator==(const Context& a, const Context& b) noexcept { return a.node_ == b.node_; }

 private:
  friend struct detail::ContextAccess;
  explicit Context(std::shared_ptr<detail::ContextNode> n) noexcept : node_(std::move(n)) {}
  std::shared_ptr<detail::ContextNode> node_;  // null: background()
};

// Cancels its context: Go's CancelFunc and CancelCauseFunc in one RAII handle. Destroying (or
// assigning over) a CancelFunc cancels, so a context never outlives its cancel by accident.
// Cancelling is idempotent: only the first cancellation that reaches a context sets its err
// and cause. operator() and cancel() are thread-safe (they may be called concurrently from many
// fibers and threads on the same CancelFunc) and never block on other fibers: they take the
// locks of the context subtree briefly and wake its waiters. Movable, not copyable; a
// moved-from or default-constructed CancelFunc does nothing.
class CancelFunc {
 public:
  CancelFunc() noexcept = default;
  CancelFunc(CancelFunc&&) noexcept = default;
  CancelFunc& operator=(CancelFunc&& other) noexcept;
  CancelFunc(const CancelFunc&) = delete;
  CancelFunc& operator=(const CancelFunc&) = delete;
  ~CancelFunc();

  // Cancels with cause canceled (err canceled).
  void operator()() const noexcept;
  // Cancels with `cause` (an empty cause means canceled). Go's CancelCauseFunc.
  void cancel(std::error_code cause) const noexcept;

 private:
  friend struct detail::ContextAccess;
  explicit CancelFunc(std::shared_ptr<detail::ContextNode> n) noexcept : node_(std::move(n)) {}
  std::shared_ptr<detail::ContextNode> node_;
};

// What with_cancel and friends return: `auto [ctx, cancel] = spindle::with_cancel(parent);`
struct CancelableContext {
  Context ctx;
  CancelFunc cancel;
};

// The root context: never done, no deadline, no values. Go's Background and TODO (TODO marks
// code that has not decided which context to use yet; it behaves the same).
[[nodiscard]] Context background() noexcept;
[[nodiscard]] Context todo() noexcept;

// A child that is done when `cancel` is called or the parent is done, whichever is first.
[[nodiscard]] CancelableContext with_cancel(const Context& parent);
// The same; cancel.cancel(cause) records `cause` for cause(ctx). (Go's WithCancelCause.)
[[nodiscard]] CancelableContext with_cancel_cause(const Context& parent);

// A child that is also done at `d` (err deadline_exceeded). If the parent's deadline is already
// earlier, the child is a plain with_cancel child (its deadline() is the parent's). A deadline
// at or before now gives a context that is already done.
[[nodiscard]] CancelableContext with_deadline(const Context& parent, TimePoint d);
// The same; when the deadline passes, cause(ctx) is `cause` (err is still deadline_exceeded).
[[nodiscard]] CancelableContext with_deadline_cause(const Context& parent, TimePoint d,
                                                   std::error_code cause);

// with_deadline(parent, now + timeout).
template <class Rep, class Period>
[[nodiscard]] CancelableContext with_timeout(const Context& parent,
                                             std::chrono::duration<Rep, Period> timeout) {
  return with_deadline(parent, deadline_after(timeout));
}
template <class Rep, class Period>
[[nodiscard]] CancelableContext with_timeout_cause(const Context& parent,
                                                   std::chrono::duration<Rep, Period> timeout,
                                                   std::error_code cause) {
  return with_deadline_cause(parent, deadline_after(timeout), cause);
}

// A child carrying `value` under `key` (lookups walk towards the root; the nearest binding
// wins). Cancellation and deadline are the parent's. The value is moved/copied into the node.
template <class T, class U>
[[nodiscard]] Context with_value(const Context& parent, const ContextKey<T>& key, U&& value) {
  static_assert(std::is_constructible_v<T, U&&>, "with_value: value does not convert to the key's type");
  auto* p = new T(std::forward<U>(value));
  return detail::make_value_context(parent, &key, p,
                                    [](void* v) noexcept { delete static_cast<T*>(v); });
}

// A child that keeps the parent's values but is never done, has no deadline and no cause
// (Go's WithoutCancel: for work that must outlive the request that started it).
[[nodiscard]] Context without_cancel(const Context& parent);

// Why ctx is done: empty while it is not; else the cause given to the first cancellation that
// reached it (see the table at the top). Non-blocking, thread-safe.
[[nodiscard]] std::error_code cause(const Context& ctx) noexcept;

// The handle after_func returns.
class AfterFuncStop {
 public:
  AfterFuncStop() noexcept = default;
  // Unregisters f. True if this call prevented f from running; false if f has already been
  // started (or the context was done and f is on its way) or stop was already called. Does not
  // wait for f to finish. Thread-safe.
  bool stop() const noexcept { return state_ != nullptr && detail::stop_after_func(*state_); }

 private:
  friend struct detail::ContextAccess;
  explicit AfterFuncStop(std::shared_ptr<detail::AfterFuncState> s) noexcept : state_(std::move(s)) {}
  std::shared_ptr<detail::AfterFuncState> state_;
};

namespace detail {
struct ContextAccess {
  static const std::shared_ptr<ContextNode>& node(const Context& c) noexcept { return c.node_; }
  static Context make(std::shared_ptr<ContextNode> n) noexcept { return Context(std::move(n)); }
  static CancelFunc make_cancel(std::shared_ptr<ContextNode> n) noexcept {
    return CancelFunc(std::move(n));
  }
  static const std::shared_ptr<ContextNode>& node(const CancelFunc& c) noexcept { return c.node_; }
  static AfterFuncStop make_stop(std::shared_ptr<AfterFuncState> s) noexcept {
    return AfterFuncStop(std::move(s));
  }
};
}  // namespace detail

// Arranges for f() to run once, in its own fiber (spindle::go), after ctx is done: promptly if
// it is done already. Neither cancel nor stop waits for f. Dropping the returned handle does
// not unregister f (as in Go): the registration keeps ctx's cancelable node alive until ctx is
// done or stop() is called. If ctx can never be done, f never runs. When no runtime is running
// at the time ctx becomes done, f runs on a new detached std::thread instead. An exception
// escaping f ends the process, as from any detached fiber.
template <class F>
AfterFuncStop after_func(const Context& ctx, F&& f) {
  struct Body final : detail::AfterFuncBody {
    explicit Body(F&& fn) : fn_(std::forward<F>(fn)) {}
    void run() override { fn_(); }
    std::decay_t<F> fn_;
  };
  return detail::ContextAccess::make_stop(
      detail::register_after_func(ctx, std::make_unique<Body>(std::forward<F>(f))));
}


namespace this_fiber {

// Sleeps until `deadline` or until ctx is done, whichever is first. Returns an empty error code
// if it slept the whole way, else ctx.err() (at once if ctx is already done, even for a
// deadline already past). Parks the fiber; outside the runtime, blocks the thread.
[[nodiscard]] std::error_code sleep_until(const Context& ctx, TimePoint deadline,
                                          std::source_location where = std::source_location::current());

template <class Rep, class Period>
[[nodiscard]] std::error_code sleep_for(const Context& ctx, std::chrono::duration<Rep, Period> d,
                                        std::source_location where = std::source_location::current()) {
  return sleep_until(ctx, deadline_after(d), where);
}

}  // namespace this_fiber
}  // namespace spindle
