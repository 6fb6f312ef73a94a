// ErrGroup: golang.org/x/sync/errgroup. Run functions in fibers, wait for all of them, get the
// first error, and (with a context) stop the others when one fails.
//
//   auto [g, ctx] = spindle::ErrGroup::with_context(parent);
//   for (auto& url : urls) g.go([&, ctx] { return fetch(ctx, url); });   // fetch returns an
//   if (auto ec = g.wait()) return ec;                                      // std::error_code
//
// THE ERROR MODEL (the library-wide rule for "how a fiber reports failure"):
//  * A function run by the group returns std::error_code (or anything convertible to it; an
//    empty code is success), or returns void (always success).
//  * An exception escaping the function is captured (std::exception_ptr) and counts as that
//    function's error. Expected failures are values; exceptions are for bugs and for what the
//    function's own callees throw. Nothing is lost either way:
//  * The FIRST failure wins, whichever kind it is. wait() returns it if it is an error code, or
//    rethrows it if it is an exception. Later failures (codes and exceptions alike) are dropped,
//    as Go drops later errors.
//  * With with_context, the first failure cancels the derived context with that failure as its
//    cause (errc::exception when it was an exception); wait() cancels it too (cause: the first
//    error, or canceled when there was none), so the context never outlives the group's work.
//  Go's errgroup deliberately lets a panic crash the program (golang/go#53757). spindle captures
//  instead, because an exception in C++ is ordinary error signalling from the callee rather
//  than Go's "unrecoverable bug", and the fiber's stack would otherwise have to crash the whole
//  process from a place the caller cannot intercept; the caller of wait() sees it rethrown, as
//  it would from a plain function call. A detached spindle::go still crashes like a Go panic.
//
// Blocking: go() blocks while the limit is reached; wait() until every function has returned.
// Both park the calling fiber (or block the calling thread outside the runtime).
// Thread-safety: every member may be called concurrently from any fibers and threads, except
// that the first go() must happen before wait() (as with a WaitGroup's Add).
// Memory ordering: everything a function did happens-before wait() returns; a function's start
// happens-after the go()/try_go() that started it.
// Lifetime: not copyable nor movable (running fibers refer to it). The destructor cancels the
// group's context and waits for every function; if the first failure was an exception that no
// wait() rethrew, it is printed to stderr and the process terminates (as std::thread does for a
// forgotten join), unless the destructor runs during stack unwinding, where it is only printed.
#pragma once

#include <cstdint>
#include <exception>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/context.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>
#include <spindle/errors.hpp>
#include <spindle/runtime.hpp>

namespace spindle {

class ErrGroup;
struct ErrGroupWithContext;

class ErrGroup {
 public:
  // A group with no limit and no context (Go's zero Group): cancels nothing.
  ErrGroup() noexcept = default;
  ErrGroup(const ErrGroup&) = delete;
  ErrGroup& operator=(const ErrGroup&) = delete;
  ~ErrGroup();

  // A group and the context derived from `parent` that it cancels on the first failure or when
  // wait() returns: `auto [g, ctx] = ErrGroup::with_context(parent);`
  [[nodiscard]] static ErrGroupWithContext with_context(const Context& parent);

  // Runs f() in a new fiber. With a limit set, first blocks until fewer than `limit` functions
  // of the group are active. f returns std::error_code (or convertible) or void.
  template <class F>
  void go(F&& f) {
    launch(std::forward<F>(f), acquire(/*block=*/true));
  }

  // Runs f() in a new fiber only if the group is below its limit; returns whether it did.
  template <class F>
  [[nodiscard]] bool try_go(F&& f) {
    const Slot s = acquire(/*block=*/false);
    if (!s.ok) return false;
    launch(std::forward<F>(f), s);
    return true;
  }

  // Limits the number of active functions to n; negative means no limit, 0 blocks every go().
  // Throws SyncError "errgroup: modify limit while N goroutines in the group are still active"
  // if a limit is set and N > 0 functions started under it are still running (Go's panic).
  void set_limit(int n);

  // Blocks until every function started by go/try_go has returned, cancels the group's
  // context, then returns the first error, or rethrows the first exception if that came first.
  [[nodiscard]] std::error_code wait();

 private:
  friend struct ErrGroupWithContext;
  explicit ErrGroup(CancelFunc cancel) noexcept : cancel_(std::move(cancel)) {}

  struct Slot {
    bool ok = false;        // go may proceed
    bool held = false;      // holds a limit token
    std::uint64_t gen = 0;  // the limit generation the token belongs to
  };
  Slot acquire(bool block);
  void release_failed_launch(Slot s) noexcept;
  void finish(std::error_code ec, std::exception_ptr ep, Slot s) noexcept;
  void join() noexcept;

  template <class F>
  void launch(F&& f, Slot s) {
    using Fn = std::decay_t<F>;
    using R = std::invoke_result_t<Fn&>;
    static_assert(std::is_void_v<R> || std::is_convertible_v<R, std::error_code>,
                  "ErrGroup::go: the function must return void or std::error_code");
    auto body = [this, s, fn = Fn(std::forward<F>(f))]() mutable {
      std::error_code ec;
      std::exception_ptr ep;
      try {
        if constexpr (std::is_void_v<R>) {
          fn();
        } else {
          ec = fn();
        }
      } catch (...) {
        ep = std::current_exception();  // handed to wait(): the first failure is rethrown there
      }
      finish(ec, std::move(ep), s);  // outside the handler: finish may wake and take locks
    };
    bool spawned = false;
    struct Undo {
      ErrGroup* g;
      Slot s;
      const bool& spawned;
      ~Undo() {
        if (!spawned) g->release_failed_launch(s);
      }
    } undo{this, s, spawned};
    spindle::go(SpawnOptions{.name = "errgroup"}, std::move(body));
    spawned = true;
  }

  detail::SpinLock mu_;
  int limit_ = -1;                   // negative: no limit
  int tokens_ = 0;                   // functions active under the current limit
  std::uint64_t gen_ = 0;            // bumped by set_limit
  std::int64_t active_ = 0;          // started and not finished (Go's WaitGroup)
  detail::Waiter* limit_head_ = nullptr;  // go() callers blocked on the limit (FIFO)
  detail::Waiter* limit_tail_ = nullptr;
  detail::Waiter* waiters_ = nullptr;     // wait() callers
  bool failed_ = false;
  std::error_code err_;
  std::exception_ptr exc_;
  bool delivered_ = false;           // exc_ rethrown by some wait()
  CancelFunc cancel_;                // empty without a context
};

// What ErrGroup::with_context returns (the group is built in place: it cannot move).
struct ErrGroupWithContext {
  ErrGroup group;
  Context ctx;
};

}  // namespace spindle
