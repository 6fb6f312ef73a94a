// WorkerPool (see worker_pool.hpp).
//
// Invariants (under mu_): a submit is accepted only while queue_.size() < capacity + idle_;
// idle_ counts workers parked on not_empty_ (incremented before, decremented after the wait);
// closed_ never goes back to false; stats_.queued == queue_.size(); every accepted task is run
// exactly once, or returned by shutdown(abandon), never both.
#include <spindle/patterns/worker_pool.hpp>

#include <cstdio>
#include <exception>
#include <stdexcept>

#include <spindle/runtime.hpp>

namespace spindle::patterns {

namespace {
PoolSettings checked(PoolSettings s) {
  if (s.workers <= 0) {
    throw ConfigError("patterns: WorkerPool: workers must be positive, got " + std::to_string(s.workers));
  }
  if (s.name.empty()) s.name = "worker-pool";
  return s;
}
}  // namespace

WorkerPool::WorkerPool(PoolSettings s) : s_(checked(std::move(s))), pool_ctx_(with_cancel(background())) {
  for (int i = 0; i < s_.workers; ++i) {
    workers_.go(SpawnOptions{.name = s_.name}, [this] { worker_loop(); });
  }
}

WorkerPool::~WorkerPool() {
  (void)shutdown(ShutdownMode::drain);
  workers_.wait();  // worker_loop never throws: tasks' exceptions are caught there
  // An exception no wait() delivered is not dropped silently: as ErrGroup's destructor does, it
  // is printed and the process ends (as std::thread does for a forgotten join), unless this
  // destructor runs during unwinding, where it is only printed.
  if (first_error_ && !error_delivered_) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(first_error_);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
      what = "non-std exception";  // described above; the process ends below regardless
    }
    std::fprintf(stderr, "spindle::patterns::WorkerPool \"%s\" destroyed with an undelivered task exception: %s\n",
                 s_.name.c_str(), what.c_str());
    if (std::uncaught_exceptions() == 0) std::terminate();
  }
}

bool WorkerPool::has_room() const noexcept { return queue_.size() < s_.queue_capacity + idle_; }

std::error_code WorkerPool::submit_task(Task t, const Context* ctx, bool block) {
  if (ctx != nullptr) {
    if (std::error_code ec = ctx->err()) return ec;
  }
  std::unique_lock lock(mu_);
  if (!closed_ && !has_room()) {
    if (!block) {
      ++stats_.rejected;
      return make_error_code(errc::queue_full);
    }
    auto ready = [&] { return closed_ || has_room(); };
    if (ctx != nullptr) {
      if (std::error_code ec = not_full_.wait(lock, *ctx, ready)) return ec;
    } else {
      not_full_.wait(lock, ready);
    }
  }
  if (closed_) {
    ++stats_.rejected;
    return make_error_code(errc::pool_closed);
  }
  queue_.push_back(std::move(t));
  ++stats_.submitted;
  stats_.queued = queue_.size();
  lock.unlock();
  not_empty_.signal();
  return {};
}

void WorkerPool::worker_loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    while (queue_.empty() && !closed_) {
      ++idle_;
      not_full_.signal();  // an idle worker is room for a hand-off
      not_empty_.wait(lock);
      --idle_;
    }
    if (queue_.empty()) break;  // closed and drained (or abandoned)
    Task t = std::move(queue_.front());
    queue_.pop_front();
    stats_.queued = queue_.size();
    ++stats_.running;
    lock.unlock();
    not_full_.signal();
    std::exception_ptr error;
    try {
      t(pool_ctx_.ctx);
    } catch (...) {
      error = std::current_exception();
    }
    t = Task();  // the task's captures go before the books say it is done
    lock.lock();
    --stats_.running;
    if (error) {
      ++stats_.failed;
      if (!first_error_) first_error_ = error;
    } else {
      ++stats_.completed;
    }
  }
}

std::vector<WorkerPool::Task> WorkerPool::shutdown(ShutdownMode mode) {
  std::vector<Task> dropped;
  {
    std::lock_guard lock(mu_);
    closed_ = true;
    stats_.closed = true;
    if (mode == ShutdownMode::abandon) {
      dropped.reserve(queue_.size());
      for (Task& t : queue_) dropped.push_back(std::move(t));
      queue_.clear();
      stats_.queued = 0;
      stats_.abandoned += dropped.size();
    }
  }
  if (mode == ShutdownMode::abandon) pool_ctx_.cancel();
  not_empty_.broadcast();
  not_full_.broadcast();
  return dropped;
}

std::error_code WorkerPool::wait(const Context& ctx) {
  {
    std::lock_guard lock(mu_);
    if (!closed_) throw ConfigError("patterns: WorkerPool::wait before shutdown() would never return");
  }
  if (std::error_code ec = workers_.wait(ctx)) return ec;
  std::exception_ptr error;
  {
    std::lock_guard lock(mu_);
    if (first_error_ && !error_delivered_) {
      error_delivered_ = true;
      error = first_error_;
    }
  }
  if (error) std::rethrow_exception(error);
  return {};
}

std::error_code WorkerPool::wait_for(Duration d, const Clock* clock) {
  ClockContext tc = timeout_context(background(), d, clock_or_system(clock));
  std::error_code ec = wait(tc.ctx);
  if (ec && timed_out(tc.ctx)) return make_error_code(spindle::errc::deadline_exceeded);
  return ec;
}

PoolStats WorkerPool::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace spindle::patterns
