// blocking(fn): runs a call that blocks its thread (file I/O, getaddrinfo, a database client)
// on a separate, bounded thread pool and parks only the calling fiber until it returns, so
// worker threads never block in it (Go does the same by handing its P away in a syscall).
//
//   std::string text = spindle::blocking([&] { return read_whole_file(path); });
//   auto [rows, err] = spindle::blocking(ctx, [q] { return db.query(q); });   // capture by value
//
// The pool: one per process, started lazily; at most blocking_threads() threads (default 64,
// else $SPINDLE_BLOCKING_THREADS, else set_blocking_threads()); a thread idle for 10 s exits.
// Calls beyond the bound wait in FIFO order for a free thread. While a fiber waits in
// blocking(), the runtime's deadlock detector counts it as something that can still wake up.
//
// Memory ordering: everything the caller did before blocking() happens-before fn runs;
// everything fn did happens-before blocking() returns.
#pragma once

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/detail/context_fwd.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle {

namespace detail {

// One call handed to the pool. The completion handshake: the pool thread sets `done` and
// claims + readies `waiter` (if any) under `mu`; the caller registers `waiter` under `mu` unless
// `done` is already set, and withdraws it under `mu` if it stops waiting early.
class BlockingCall {
 public:
  virtual ~BlockingCall() = default;
  virtual void invoke() noexcept = 0;  // runs fn on a pool thread; stores its result or exception
  SpinLock mu;
  Waiter* waiter = nullptr;
  bool done = false;
  // Set by the pool thread once its waiter->ready() has returned. A woken caller waits for it
  // (a few instructions) before going on: ready() from a foreign thread still touches the
  // scheduler after the fiber is runnable, and the fiber could otherwise end the runtime (and
  // free the scheduler) under it.
  std::atomic<bool> handed_off{false};
};

template <class F, class R>
class BlockingCallFor final : public BlockingCall {
 public:
  template <class G>
  explicit BlockingCallFor(G&& fn) : fn_(std::forward<G>(fn)) {}
  void invoke() noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn_);
        result_.emplace();
      } else {
        result_.emplace(std::invoke(fn_));
      }
    } catch (...) {
      error_ = std::current_exception();  // handed to the caller, who rethrows it
    }
  }
  // Rethrows fn's exception, else returns its result (once).
  R take() {
    if (error_) std::rethrow_exception(error_);
    if constexpr (!std::is_void_v<R>) return std::move(result_->value);
  }

 private:
  struct Box {
    R value;
  };
  struct Empty {};
  F fn_;
  std::optional<std::conditional_t<std::is_void_v<R>, Empty, Box>> result_;
  std::exception_ptr error_;
};

// Submits `call` and parks until it finishes. Runs it inline on a thread outside the runtime.
void blocking_wait(const std::shared_ptr<BlockingCall>& call, const std::source_location& where);
// Submits `call` and parks until it finishes (empty code) or ctx is done (ctx.err(); the call
// keeps running, its result is dropped).
[[nodiscard]] std::error_code blocking_wait(const Context& ctx, const std::shared_ptr<BlockingCall>& call,
                                            const std::source_location& where);

}  // namespace detail

// The outcome of blocking(ctx, fn) for a fn that returns a value: the value, or why not.
template <class T>
struct [[nodiscard]] BlockingResult {
  std::optional<T> value;  // engaged exactly when err is empty
  std::error_code err;     // ctx.err() when the context ended the wait
  [[nodiscard]] bool ok() const noexcept { return !err; }
};

// Runs fn() on the blocking pool and parks the calling fiber until it returns; returns its
// result or rethrows its exception. fn is invoked by reference (the caller waits, so it may
// capture locals by reference). On a plain thread outside the runtime fn runs inline.
// Thread-safe. Never call it from fn itself (a full pool would deadlock).
template <class F>
  requires std::is_invocable_v<F&>
auto blocking(F&& fn, std::source_location where = std::source_location::current())
    -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  auto call = std::make_shared<detail::BlockingCallFor<F&, R>>(fn);
  detail::blocking_wait(call, where);
  return call->take();
}

// As blocking(fn), but the wait also ends when ctx is done. Then it returns ctx.err() at once
// while fn keeps running to completion on the pool and its result (or exception) is dropped:
// a thread cannot be interrupted, so make fn bounded (a timeout of its own) if it may hang.
// Because fn may outlive the call, it is moved into the call and must not refer to the caller's
// stack: capture by value. A context already done fails at once without running fn.
// Returns std::error_code for a void fn, else BlockingResult<R>. fn's exception is rethrown
// (only when the wait was not cancelled).
template <class F>
  requires std::is_invocable_v<std::decay_t<F>&>
auto blocking(const Context& ctx, F&& fn, std::source_location where = std::source_location::current()) {
  using D = std::decay_t<F>;
  using R = std::invoke_result_t<D&>;
  if (std::error_code ec = detail::context_err(ctx)) {
    if constexpr (std::is_void_v<R>) {
      return ec;
    } else {
      return BlockingResult<R>{std::nullopt, ec};
    }
  }
  auto call = std::make_shared<detail::BlockingCallFor<D, R>>(std::forward<F>(fn));
  const std::error_code ec = detail::blocking_wait(ctx, call, where);
  if constexpr (std::is_void_v<R>) {
    if (!ec) call->take();
    return ec;
  } else {
    if (ec) return BlockingResult<R>{std::nullopt, ec};
    return BlockingResult<R>{std::optional<R>(call->take()), {}};
  }
}

// The pool's bound on threads (>= 1). Lowering it does not stop busy threads; it takes effect as
// threads go idle. Thread-safe.
void set_blocking_threads(int n);
[[nodiscard]] int blocking_threads() noexcept;

// Pool threads alive now, and calls queued or running (for tests and dumps).
struct BlockingPoolStats {
  int threads = 0;
  int idle = 0;
  int queued = 0;
};
[[nodiscard]] BlockingPoolStats blocking_pool_stats() noexcept;

}  // namespace spindle
