// Fiber: the record of one spindle fiber.
//
// The record lives at the top of the fiber's own stack, its FiberRun and callable just below it,
// above the frames: a spawn allocates nothing once the worker's stack cache is warm, and a
// parked fiber with shallow frames costs one resident page. Records sit at one of eight
// cache-line offsets from the top (by fiber id), so the records of many fibers do not all alias
// to the same L1 set.
//
// Life of a fiber (see runtime/README.md): spawn() builds the record and makes it runnable; a
// worker switches to it; it parks and is readied any number of times, possibly resuming on
// another worker each time; its function returns; it switches to its worker for the last time
// with AfterSwitch::exit and the worker recycles the stack. A fiber is never destroyed while
// suspended: every fiber runs to completion.
#pragma once

#include <atomic>
#include <cstdint>
#include <new>
#include <source_location>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spawn.hpp>

#include "fiber/stack.hpp"
#include "fiber/switch.hpp"

namespace spindle::detail {

// Fiber::park_state: the handshake between park() and ready(), see park.cpp.
enum class ParkState : std::uint32_t {
  running = 0,   // on a worker, or runnable in a queue
  parked = 1,    // suspended, off its stack; ready() moves it to a run queue
  notified = 2,  // ready() came while it was still parking: requeue once suspended
};

// What only a started fiber has: its stack and its saved registers. It lives on that stack,
// just below the record (Fiber::run()), so the record of a fiber that has not started yet
// (sched/unstarted_arena.hpp) is 96 bytes smaller: a loop spawning faster than fibers start
// writes, and faults in, that much less per fiber.
struct FiberRun {
  SwitchContext ctx;  // saved registers while suspended (and sanitizer state)
  Stack stack;
};

struct Fiber {
  // Started fibers only (started == true).
  [[nodiscard]] FiberRun& run() noexcept {
    char* at = reinterpret_cast<char*>(this) - sizeof(FiberRun);  // placed by place_on_stack
    return *std::launder(reinterpret_cast<FiberRun*>(at));
  }
  [[nodiscard]] const FiberRun& run() const noexcept { return const_cast<Fiber*>(this)->run(); }

  // Ordered so that a fiber resuming from a park and later exiting touches the record's first
  // two cache lines only (the third holds what only dumps and spawns read): a million fibers
  // woken at once are bound by the lines each one fetches.
  std::atomic<ParkState> park_state{ParkState::running};
  // Diagnostics, with the fields below the callable: written by the fiber itself as it parks
  // (and the first two cleared as it resumes), read by dumps from any thread: relaxed atomics,
  // so a dump sees each field whole (possibly from different waits).
  std::atomic<WaitReason> wait_reason{WaitReason::none};
  std::atomic<bool> exited{false};    // finished, still registered until its batch is removed
  bool started = false;               // has a stack and a FiberRun; else an unstarted record
  // Its place in the registry of live fibers (sched/fiber_registry.hpp).
  std::uint16_t registry_shard = 0;
  std::uint32_t registry_slot = 0;
  int last_worker = -1;               // the worker it last ran on (force-migration mode)
  std::uint64_t id = 0;
  std::atomic<const void*> wait_object{nullptr};
  Callable fn{};                      // fn.src points at the callable's copy, next to the record

  std::atomic<std::source_location> wait_site{std::source_location{}};
  std::atomic<std::int64_t> wait_since{0};  // Clock ticks when it parked (Worker::round_ticks_)
  std::size_t stack_region = 0;       // its stack's size class (the one it will get, if unstarted)
  std::source_location spawn_site{};
  // Written under its registry shard's lock, which dumps hold.
  char name[32] = {};
};

}  // namespace spindle::detail
