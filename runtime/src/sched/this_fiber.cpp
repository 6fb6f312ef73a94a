// spindle::this_fiber: yield, sleep, and the calling fiber's identity.
#include <spindle/this_fiber.hpp>

#include <algorithm>
#include <cstring>
#include <thread>

#include <spindle/detail/park.hpp>

#include "diag/trace.hpp"
#include "sched/scheduler.hpp"

namespace spindle::this_fiber {

void yield() noexcept {
  detail::Fiber* f = detail::current_fiber();
  if (f == nullptr) {
    std::this_thread::yield();
    return;
  }
  detail::Worker* w = detail::current_worker();
  w->after_ = detail::AfterSwitch::yield;
  detail::switch_to(f->run().ctx, w->sched_ctx_, nullptr);
  // A yielder is resumed by the loop (it waits in the ring, never in run_next), but every
  // resumption point finishes a direct switch, so none can be missed.
  detail::Worker::finish_arrival();
}

void sleep_until(TimePoint deadline, std::source_location where) {
  // A deadline already past is park()'s first check: reading the clock here too was a third of
  // the runtime's clock reads in a sleep-heavy program (and a clock read costs ~20 ns in a VM).
  detail::Waiter w;
  detail::ParkOptions opts;
  opts.deadline = deadline;
  (void)detail::park(w, {detail::WaitReason::sleep, nullptr, where}, opts);
}

std::uint64_t id() noexcept {
  detail::Fiber* f = detail::current_fiber();
  return f == nullptr ? 0 : f->id;
}

std::string_view name() noexcept {
  detail::Fiber* f = detail::current_fiber();
  return f == nullptr ? std::string_view{} : std::string_view(f->name);
}

void set_name(std::string_view name) noexcept {
  detail::Fiber* f = detail::current_fiber();
  if (f == nullptr) return;
  const std::size_t n = std::min(name.size(), sizeof f->name - 1);
  std::lock_guard lock(detail::current_scheduler()->registry_.lock_of(f));  // dumps read names under it
  if (n > 0) std::memcpy(f->name, name.data(), n);
  f->name[n] = '\0';
  if (detail::trace_on()) [[unlikely]] detail::trace_rename(f);
}

}  // namespace spindle::this_fiber
