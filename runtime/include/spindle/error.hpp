// spindle's error category: the std::error_code values that expected outcomes report.
//
// A cancelled or timed-out wait is an outcome, not an exception (STYLE.md "Errors"): it comes back
// as a std::error_code of this category. The two values Go's context package defines are here,
// with Go's messages, so that `ec.message()` reads as Go's `err.Error()` does:
//
//   errc::canceled           "context canceled"            (Go: context.Canceled)
//   errc::deadline_exceeded  "context deadline exceeded"   (Go: context.DeadlineExceeded)
//
// deadline_exceeded is equivalent to std::errc::timed_out (Go: DeadlineExceeded.Timeout() is
// true), so `ec == std::errc::timed_out` holds for it; canceled is equivalent to
// std::errc::operation_canceled. Comparisons against the enum work directly:
// `if (ctx.err() == spindle::errc::canceled)`.
//
// errc::exception is the Cause an ErrGroup's context gets when the first failure of the group was
// an exception rather than a returned error (the exception itself is rethrown by wait()).
//
// Thread-safety: error_category() returns one immutable object; everything here is thread-safe.
#pragma once

#include <system_error>

namespace spindle {

enum class errc : int {
  canceled = 1,           // the context was cancelled
  deadline_exceeded = 2,  // the context's deadline passed
  exception = 3,          // a fiber of an ErrGroup exited with an exception
};

// The category of spindle's error codes; name() is "spindle".
[[nodiscard]] const std::error_category& error_category() noexcept;

[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

}  // namespace spindle

template <>
struct std::is_error_code_enum<spindle::errc> : std::true_type {};
