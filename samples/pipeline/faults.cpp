#include "faults.hpp"

namespace pipeline {

std::string_view to_string(OnError p) noexcept {
  switch (p) {
    case OnError::skip: return "skip";
    case OnError::retry: return "retry";
    case OnError::abort: return "abort";
  }
  return "?";
}

std::optional<OnError> parse_on_error(std::string_view s) noexcept {
  if (s == "skip") return OnError::skip;
  if (s == "retry") return OnError::retry;
  if (s == "abort") return OnError::abort;
  return std::nullopt;
}

std::optional<StageId> parse_stage(std::string_view s) noexcept {
  for (std::size_t i = 0; i < kStages; ++i) {
    if (kStageNames[i] == s) return static_cast<StageId>(i);
  }
  return std::nullopt;
}

}  // namespace pipeline
