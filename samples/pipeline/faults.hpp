// Failure injection and error policies, per stage.
//
// --fail-<stage>=P makes each attempt at an item fail with probability P (errc::injected),
// independently per (seed, stage, item, attempt): a deterministic draw, so a test can compute
// exactly which items fail and how many retries they need, and a retry of a failed attempt
// may succeed (the failures are transient, as a flaky network is).
//
// What happens to an item that fails (--on-error):
//   skip   the item is dropped and counted (errors = skipped);
//   retry  patterns::retry tries it again with capped exponential backoff and full jitter, up to
//          --attempts in all; an item that still fails is then dropped and counted, like skip.
//          bad_document is not retried (the same bytes will not parse the next time);
//   abort  the first failure cancels the whole pipeline (patterns::Pipeline's fail policy: the
//          context of every stage is cancelled with the error as its cause); the run reports it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "corpus.hpp"

namespace pipeline {

enum class StageId : std::uint8_t { fetch, parse, transform, store };
inline constexpr std::size_t kStages = 4;
inline constexpr std::array<std::string_view, kStages> kStageNames = {"fetch", "parse", "transform", "store"};

enum class OnError : std::uint8_t { skip, retry, abort };

[[nodiscard]] std::string_view to_string(OnError p) noexcept;
[[nodiscard]] std::optional<OnError> parse_on_error(std::string_view s) noexcept;
[[nodiscard]] std::optional<StageId> parse_stage(std::string_view s) noexcept;

struct StagePolicy {
  OnError on_error = OnError::skip;
  double fail_rate = 0;  // probability that one attempt at one item fails, in [0, 1]
};

// Whether attempt `attempt` (1, 2, ...) of item `index` in `stage` is made to fail.
[[nodiscard]] constexpr bool injected_failure(std::uint64_t seed, StageId stage, std::uint64_t index,
                                              int attempt, double rate) noexcept {
  if (rate <= 0) return false;
  if (rate >= 1) return true;
  const std::uint64_t h = mix64(mix64(seed ^ 0x5bd1e995ULL) ^ mix64((static_cast<std::uint64_t>(stage) << 56) ^
                                                                    (static_cast<std::uint64_t>(attempt) << 48) ^ index));
  return static_cast<double>(h >> 11) * 0x1.0p-53 < rate;
}

}  // namespace pipeline
