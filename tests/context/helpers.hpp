// Helpers shared by the context tests.
#pragma once

#include <chrono>
#include <system_error>

#include <spindle/context.hpp>
#include <spindle/error.hpp>
#include <spindle/this_fiber.hpp>

#include "support/polling.hpp"
#include "support/scale.hpp"

namespace spindle::testing {

// The 100,000-fiber tests at full scale; smaller under sanitizers (support/scale.hpp: TSan
// keeps ~1 MiB per live fiber and fails to mmap long before 100k).
inline constexpr int kManyFibers = static_cast<int>(scaled(100'000, 20'000, 2'000));

inline std::error_code canceled() { return make_error_code(errc::canceled); }
inline std::error_code deadline_exceeded() { return make_error_code(errc::deadline_exceeded); }

// Blocks until ctx is done (a long context-aware sleep), returning ctx.err().
inline std::error_code wait_done(const Context& ctx) {
  return this_fiber::sleep_for(ctx, std::chrono::hours(1));
}

}  // namespace spindle::testing
