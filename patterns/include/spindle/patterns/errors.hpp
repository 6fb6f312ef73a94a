// The errors of spindle::patterns: expected outcomes as std::error_code values, misuse as a typed
// exception.
//
// Following the runtime's error model (spindle/errgroup.hpp, STYLE.md "Errors"):
//  * An outcome a caller must handle (a breaker that is open, a full bulkhead, a closed pool, a
//    rate-limited wait that cannot finish before its deadline) is a std::error_code of
//    patterns::error_category(), named `patterns::errc`. Comparisons against the enum work:
//    `if (ec == spindle::patterns::errc::circuit_open)`. Cancellation keeps the runtime's codes
//    (spindle::errc::canceled / deadline_exceeded), as Go's packages return ctx.Err().
//  * Misuse and bad input (a zero or negative capacity, burst, concurrency or interval; a
//    half-open probe count of zero with a custom policy that could never close, ...) throws
//    patterns::ConfigError, a spindle::Panic, when the object is built or the call is made.
//    Nothing in the catalogue hangs or silently drops work instead.
//
// Thread-safety: error_category() returns one immutable object; everything here is thread-safe.
#pragma once

#include <string>
#include <system_error>

#include <spindle/errors.hpp>

namespace spindle::patterns {

enum class errc : int {
  circuit_open = 1,       // "circuit breaker is open" (gobreaker's ErrOpenState)
  too_many_requests,      // "too many requests" (half-open probes all taken; ErrTooManyRequests)
  bulkhead_full,          // "bulkhead is full"
  unknown_compartment,    // "bulkhead compartment is not configured"
  pool_closed,            // "worker pool is shut down"
  queue_full,             // "worker pool queue is full" (try_submit)
  exceeds_burst,          // "rate: Wait(n) exceeds limiter's burst"
  would_exceed_deadline,  // "rate: Wait(n) would exceed context deadline"
  limiter_stopped,        // "rate: limiter stopped" (TickerLimiter after stop())
  too_many_restarts,      // "supervisor: worker restarted too many times"
  hook_failed,            // "shutdown: hook failed" (a hook threw; see ShutdownReport)
  closed,                 // "queue is closed" (UnboundedQueue after close() and drained)
};

// The category of patterns' error codes; name() is "spindle.patterns".
[[nodiscard]] const std::error_category& error_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Bad configuration or argument (non-positive capacity, burst, concurrency, period; a setting out
// of range). Thrown by constructors and calls, with a message naming the pattern and the value.
class ConfigError : public spindle::Panic {
 public:
  using spindle::Panic::Panic;
};

// Reading the value of a Result that holds an error (a bug in the caller, like
// std::bad_expected_access).
class BadResultAccess : public spindle::Panic {
 public:
  using spindle::Panic::Panic;
};

}  // namespace spindle::patterns

template <>
struct std::is_error_code_enum<spindle::patterns::errc> : std::true_type {};
