// WorkerPool: N worker fibers taking tasks from a bounded queue, with backpressure and a
// graceful shutdown.
//
//   WorkerPool pool({.workers = 8, .queue_capacity = 64});
//   if (auto ec = pool.submit(ctx, [&](const Context& c) { handle(c, req); })) ...;  // waits
//   ...
//   pool.shutdown(ShutdownMode::drain);          // stop accepting; queued tasks still run
//   if (pool.wait_for(30s)) {                    // in-flight work, with a deadline
//     auto dropped = pool.shutdown(ShutdownMode::abandon);   // give up on what is queued
//   }
//
// The seed's pool could not report a rejected submit (Submit silently dropped the task while
// shutting down), drained only by ranging over a channel nobody closed, and had no deadline.
// Semantics:
//  * a task is f() or f(const Context&): the context is the pool's, cancelled by
//    shutdown(abandon), so long tasks can stop early;
//  * backpressure: a submit is accepted while queued tasks < queue_capacity + idle workers
//    (queue_capacity 0 is a hand-off: a submit succeeds only when a worker is free for it).
//    submit(f) parks until accepted; submit(ctx, f) parks until accepted or ctx is done
//    (ctx.err(), the task not taken); try_submit(f) never parks (errc::queue_full);
//  * shutdown(mode) stops accepting: every later submit, and every submit parked at that
//    moment, returns errc::pool_closed; the task was not taken, nothing is dropped silently.
//    drain: queued tasks still run. abandon: queued tasks are removed and returned to the
//    caller (they never run), and the pool's context is cancelled. Idempotent (a later
//    abandon after a drain still abandons what is left);
//  * wait(ctx) / wait_for(d): parks until every worker has exited (the queue is drained or
//    abandoned and every running task has returned): {} then, or ctx.err() / deadline_exceeded
//    if that comes first (tasks keep running; stats() says how many). Calling it before
//    shutdown throws ConfigError (it could never return);
//  * a task that throws is counted in stats().failed; the first such exception is rethrown by
//    the wait() that sees the pool finished (as WaitGroup::go does), never lost;
//  * the destructor is shutdown(drain) then a wait for the workers: it parks until the work is
//    done. If a task threw and no wait() delivered that exception, the destructor prints it
//    and ends the process (as ErrGroup's does), unless it runs during unwinding.
// Settings: workers > 0, else ConfigError.
//
// Thread-safety: every member may be called concurrently. Memory ordering: a submit
// happens-before its task runs; every task's return happens-before a successful wait() returns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <spindle/cond.hpp>
#include <spindle/context.hpp>
#include <spindle/mutex.hpp>
#include <spindle/waitgroup.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/detail/unique_function.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

struct PoolSettings {
  int workers = 0;                 // > 0
  std::size_t queue_capacity = 0;  // tasks that may wait beyond the idle workers
  std::string name{};              // names the worker fibers (dumps)
};

enum class ShutdownMode : std::uint8_t { drain, abandon };

struct PoolStats {
  std::uint64_t submitted = 0;  // accepted
  std::uint64_t rejected = 0;   // queue_full or pool_closed
  std::uint64_t completed = 0;  // returned normally
  std::uint64_t failed = 0;     // threw
  std::uint64_t abandoned = 0;  // removed by shutdown(abandon), never run
  std::size_t queued = 0;       // now
  std::size_t running = 0;      // now
  bool closed = false;
};

class WorkerPool {
 public:
  using Task = detail::UniqueFunction<void(const Context&)>;

  explicit WorkerPool(PoolSettings s);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  ~WorkerPool();

  template <class F>
  [[nodiscard]] std::error_code submit(F&& f) {
    return submit_task(wrap(std::forward<F>(f)), nullptr, /*block=*/true);
  }
  template <class F>
  [[nodiscard]] std::error_code submit(const Context& ctx, F&& f) {
    return submit_task(wrap(std::forward<F>(f)), &ctx, /*block=*/true);
  }
  template <class F>
  [[nodiscard]] std::error_code try_submit(F&& f) {
    return submit_task(wrap(std::forward<F>(f)), nullptr, /*block=*/false);
  }

  // See the file comment. Returns the abandoned tasks (empty for drain).
  std::vector<Task> shutdown(ShutdownMode mode = ShutdownMode::drain);
  [[nodiscard]] std::error_code wait(const Context& ctx = background());
  [[nodiscard]] std::error_code wait_for(Duration d, const Clock* clock = nullptr);

  [[nodiscard]] PoolStats stats() const;
  // The context tasks receive (cancelled by shutdown(abandon)).
  [[nodiscard]] const Context& context() const noexcept { return pool_ctx_.ctx; }

 private:
  template <class F>
  static Task wrap(F&& f) {
    using Fn = std::decay_t<F>;
    if constexpr (std::is_invocable_v<Fn&, const Context&>) {
      return Task(std::forward<F>(f));
    } else {
      static_assert(std::is_invocable_v<Fn&>, "WorkerPool: a task is f() or f(const Context&)");
      return Task([g = Fn(std::forward<F>(f))](const Context&) mutable { g(); });
    }
  }
  std::error_code submit_task(Task t, const Context* ctx, bool block);
  void worker_loop();
  [[nodiscard]] bool has_room() const noexcept;  // under mu_

  const PoolSettings s_;
  CancelableContext pool_ctx_;
  mutable spindle::Mutex mu_;
  spindle::Cond not_empty_;  // workers wait for tasks (or close)
  spindle::Cond not_full_;   // submitters wait for room (or close)
  std::deque<Task> queue_;
  std::size_t idle_ = 0;     // workers parked on not_empty_
  bool closed_ = false;
  PoolStats stats_;
  std::exception_ptr first_error_;
  bool error_delivered_ = false;
  WaitGroup workers_;
};

}  // namespace spindle::patterns
