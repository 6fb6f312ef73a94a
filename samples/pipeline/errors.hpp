// The pipeline's own error codes (std::error_code values, as everywhere in spindle), and the
// exception for the one failure no policy may skip: the database refusing a commit.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace pipeline {

enum class errc : int {
  injected = 1,   // "injected failure": a --fail-<stage> draw came up
  http_status,    // "unexpected HTTP status": the origin answered 4xx or another non-200
  http_unavailable,  // "origin unavailable": the origin answered 5xx (retryable)
  bad_document,   // "bad document": not JSON, or not a JSON object
  io_error,       // "I/O error": a file could not be read
  database,       // "database error": SQLite refused (message in the exception or report)
};

[[nodiscard]] const std::error_category& error_category() noexcept;
[[nodiscard]] inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

// Thrown by the store when a batch cannot be committed (after retries, if the store's policy is
// retry): rows that cannot be written cannot be skipped, so it fails the run whatever the
// policy. patterns::Pipeline turns an exception from a stage into the run's failure.
class DatabaseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace pipeline

template <>
struct std::is_error_code_enum<pipeline::errc> : std::true_type {};
