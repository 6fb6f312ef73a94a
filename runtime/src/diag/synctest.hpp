// The synctest bubble's hook in the scheduler's idle path (see spindle/synctest.hpp).
//
// A synctest runtime has one worker. When that worker finds nothing to run it calls
// synctest_idle() before sleeping: if every fiber is durably blocked (no I/O wait, no blocking
// call in flight, nothing queued), it first wakes the fibers in synctest::wait(), else moves the
// virtual clock to the earliest timer, so the worker's next look at the timers fires it. Only
// when no timer is pending does the worker go on to the deadlock check.
#pragma once

#include <spindle/clock.hpp>

namespace spindle::detail {

class Scheduler;

[[nodiscard]] inline bool virtual_clock_on() noexcept {
  return g_virtual_clock.load(std::memory_order_relaxed);
}

// True if it made progress possible (woke waiters or advanced the clock): the worker looks for
// work again instead of sleeping. Otherwise sets `deadline` to kNoDeadline: a virtual deadline
// means nothing to a real sleep, and only a real event (I/O, a plain thread) can end it.
bool synctest_idle(Scheduler& s, TimePoint& deadline);

}  // namespace spindle::detail
