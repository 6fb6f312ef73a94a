// can_spin: whether a contended sync primitive may busy-wait before parking (Go's
// sync_runtime_canSpin, proc.go). Spinning only pays when the holder is running on another
// worker right now and nothing else is waiting for this worker.
#include "sched/scheduler.hpp"
#include "sync/wait_list.hpp"

namespace spindle::detail::sync {

bool can_spin() noexcept {
  Worker* w = current_worker();
  if (w == nullptr) return false;  // a plain thread: park on the futex at once
  Scheduler& s = w->sched_;
  const int workers = static_cast<int>(s.workers_.size());
  if (workers <= 1) return false;  // the holder cannot run while we spin
  // Go: gomaxprocs <= npidle + nmspinning + 1 means no other worker is running fibers.
  const int idle = s.nidle_.load(std::memory_order_relaxed);
  const int spinning = s.nspinning_.load(std::memory_order_relaxed);
  if (workers <= idle + spinning + 1) return false;
  return w->runq_.empty();
}

}  // namespace spindle::detail::sync
