// Fatal reports: how the runtime dies when a fiber or the runtime itself cannot go on.
// Each names the fiber (id, name, spawn site: "fiber 12 "name" (spawned at file:line in func)")
// so the user can find the code at fault, in one write(2) (safe in a signal handler).
#pragma once

#include <exception>
#include <string>

#include "fiber/fiber.hpp"

namespace spindle::detail {

class Scheduler;
// Every live fiber with its state, wait reason and call sites (see spindle/debug.hpp).
std::string format_fiber_dump(Scheduler& s);

// An exception escaped a detached fiber: Go's unrecovered panic.
[[noreturn]] void die_uncaught_exception(const Fiber* f, std::exception_ptr e) noexcept;
// The fiber ran off the bottom of its stack.
[[noreturn]] void die_stack_overflow(const Fiber* f, const char* how) noexcept;
// The runtime's own invariant broke (Go's throw, as opposed to panic).
[[noreturn]] void die_broken_invariant(const Fiber* f, const char* what) noexcept;

}  // namespace spindle::detail
