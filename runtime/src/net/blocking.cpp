// The blocking pool: plain threads that run BlockingCalls and ready the fibers waiting on them.
//
// Invariants:
//  * One pool per process (calls need no runtime on the pool side: Waiter::ready reaches the
//    running scheduler through a global), created on first use and never destroyed (threads may
//    still be draining at exit; a leaked singleton has no destructor to race them).
//  * threads_ <= max_threads_ except right after the bound was lowered; idle_ counts threads
//    parked on cv_. A submit wakes an idle thread when idle_ covers the queue, else starts one
//    (if under the bound), else the call waits in queue_ (FIFO).
//  * A caller counts itself in Scheduler::external_waits_ from submit until it stops waiting, so
//    the deadlock detector sees a fiber that something outside the runtime will wake.
#include <spindle/net/blocking.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include <spindle/context.hpp>

#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

constexpr int kDefaultThreads = 64;
constexpr auto kIdleExit = std::chrono::seconds(10);

class BlockingPool {
 public:
  BlockingPool() {
    if (const char* env = std::getenv("SPINDLE_BLOCKING_THREADS")) {
      const int n = std::atoi(env);
      if (n > 0) max_threads_ = n;
    }
  }

  void submit(std::shared_ptr<BlockingCall> call) {
    bool start = false;
    {
      std::lock_guard lock(mu_);
      queue_.push_back(std::move(call));
      if (static_cast<std::size_t>(idle_) < queue_.size() && threads_ < max_threads_) {
        ++threads_;
        start = true;
      }
    }
    cv_.notify_one();
    if (start) {
      // Detached: a thread ends by itself after kIdleExit without work; nothing joins it.
      try {
        std::thread([this] { worker(); }).detach();
      } catch (const std::system_error&) {
        std::lock_guard lock(mu_);
        --threads_;
        // The call stays queued for a running thread; with none, nobody would ever run it.
        if (threads_ == 0) throw;
      }
    }
  }

  void set_max(int n) {
    std::lock_guard lock(mu_);
    max_threads_ = std::max(1, n);
  }
  int max() {
    std::lock_guard lock(mu_);
    return max_threads_;
  }
  BlockingPoolStats stats() {
    std::lock_guard lock(mu_);
    return {threads_, idle_, static_cast<int>(queue_.size())};
  }

 private:
  void worker() {
    std::unique_lock lock(mu_);
    for (;;) {
      while (queue_.empty()) {
        ++idle_;
        const bool woke = cv_.wait_for(lock, kIdleExit, [this] { return !queue_.empty(); });
        --idle_;
        if (!woke) {
          --threads_;
          return;
        }
      }
      if (threads_ > max_threads_) {  // the bound was lowered: shed this thread
        --threads_;
        if (!queue_.empty()) cv_.notify_one();
        return;
      }
      std::shared_ptr<BlockingCall> call = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      call->invoke();
      call->mu.lock();
      call->done = true;
      Waiter* w = call->waiter;
      call->waiter = nullptr;
      const bool wake = w != nullptr && w->claim(WakeReason::notified);
      call->mu.unlock();
      if (wake) {
        w->ready();
        call->handed_off.store(true, std::memory_order_release);  // the caller may go on now
      }
      call.reset();  // may destroy fn (ctx form, caller gone) on this thread
      lock.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<BlockingCall>> queue_;
  int threads_ = 0;
  int idle_ = 0;
  int max_threads_ = kDefaultThreads;
};

BlockingPool& pool() {
  static BlockingPool* p = new BlockingPool();  // leaked on purpose (see the file comment)
  return *p;
}

// Parks until `call` is done (notified) or the park gives up (deadline / interrupt).
WakeReason wait_done(BlockingCall& call, const std::source_location& where, TimePoint deadline,
                     const Interrupt* interrupt) {
  Waiter w;
  call.mu.lock();
  if (call.done) {
    call.mu.unlock();
    return WakeReason::notified;
  }
  call.waiter = &w;
  ParkOptions opts;
  opts.unlock = SpinLock::unlock_fn;
  opts.unlock_arg = &call.mu;
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason why = park(w, {WaitReason::blocking_call, &call, where}, opts);
  if (why != WakeReason::notified) {
    call.mu.lock();
    if (call.waiter == &w) call.waiter = nullptr;
    call.mu.unlock();
    return why;
  }
  // Woken by the pool thread: let it leave Scheduler::ready() before this fiber can end the
  // runtime (found by TSan: run() freed the scheduler while a pool thread was still in
  // wake_idle_worker()).
  while (!call.handed_off.load(std::memory_order_acquire)) spin_pause();
  return why;
}

struct ExternalWait {
  Scheduler* s = current_scheduler();
  ExternalWait() {
    if (s != nullptr) s->external_waits_.fetch_add(1, std::memory_order_seq_cst);
  }
  ~ExternalWait() {
    if (s != nullptr) s->external_waits_.fetch_sub(1, std::memory_order_seq_cst);
  }
  ExternalWait(const ExternalWait&) = delete;
  ExternalWait& operator=(const ExternalWait&) = delete;
};

}  // namespace

void blocking_wait(const std::shared_ptr<BlockingCall>& call, const std::source_location& where) {
  if (!in_fiber()) {
    call->invoke();  // a plain thread may block: no need for the pool
    return;
  }
  ExternalWait counted;
  pool().submit(call);
  (void)wait_done(*call, where, kNoDeadline, nullptr);
}

std::error_code blocking_wait(const Context& ctx, const std::shared_ptr<BlockingCall>& call,
                              const std::source_location& where) {
  if (std::error_code ec = context_err(ctx)) return ec;
  ExternalWait counted;
  pool().submit(call);
  const Interrupt in = context_interrupt(ctx);
  const WakeReason why =
      wait_done(*call, where, context_deadline(ctx), in.self != nullptr ? &in : nullptr);
  if (why == WakeReason::notified) return {};
  return context_wait_error(ctx);
}

}  // namespace spindle::detail

namespace spindle {

void set_blocking_threads(int n) { detail::pool().set_max(n); }
int blocking_threads() noexcept { return detail::pool().max(); }
BlockingPoolStats blocking_pool_stats() noexcept { return detail::pool().stats(); }

}  // namespace spindle
