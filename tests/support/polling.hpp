// Bounded polls and provoked races, for tests.
//
// A test waits by yielding only for a state that nothing signals (a fiber has queued, a count
// has been reached), and always with a limit, so that it fails rather than hangs. Race tests
// aim an action at a waiter's deadline by polling the clock: the race is the point, not a
// stand-in for synchronisation.
#pragma once

#include <chrono>
#include <cstdlib>

#include <spindle/clock.hpp>
#include <spindle/this_fiber.hpp>

#include "support/scale.hpp"

namespace spindle::testing {

// Yields until `cond` holds; false after `limit` (the caller then fails instead of hanging).
template <class Cond>
bool eventually(Cond cond, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const TimePoint deadline = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    this_fiber::yield();
  }
  return true;
}

// Polls the clock, yielding, until `t`: how a race test aims an action at a waiter's deadline.
inline void yield_until(TimePoint t) {
  while (Clock::now() < t) this_fiber::yield();
}

// SPINDLE_FORCE_MIGRATION=1 (the fixture's migration test mode) makes every wake-up and yield
// cross workers, which is far slower: the races run fewer rounds there, and the mix of their
// outcomes (which depends on timing) is only asserted in the normal mode.
inline bool force_migration() { return std::getenv("SPINDLE_FORCE_MIGRATION") != nullptr; }

// Rounds of a race test: 10,000, 2,000 under a sanitizer, a hundredth of that when forced to
// migrate.
inline int race_rounds() {
  const int rounds = kAsan || kTsan ? 2'000 : 10'000;
  return force_migration() ? rounds / 100 : rounds;
}

}  // namespace spindle::testing
