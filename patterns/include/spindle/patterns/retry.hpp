// retry: call an operation again after transient failures, waiting longer each time (capped
// exponential backoff with "full jitter"), within limits, honouring the context between tries.
//
//   Result<Reply> r = retry(ctx, {.max_attempts = 5, .max_elapsed = 30s,
//                                  .retryable = [](std::error_code ec) { return is_transient(ec); }},
//                           [&](const Context& ctx) { return client.call(ctx, req); });
//
// Semantics:
//  * fn() or fn(const Context&) returns std::error_code, Result<V>, V or void (as elsewhere in
//    patterns); retry returns the same shape (std::error_code or Result<V>);
//  * attempt 1 runs at once; after a failure that `retryable` accepts (default: every error
//    except the context's own canceled / deadline_exceeded), retry number k (1, 2, ...) sleeps
//    delay_k on the clock, where, with b_k = min(max, initial * multiplier^(k-1)),
//    delay_k = u * b_k with u uniform in [0, 1) ("full jitter", AWS Architecture Blog, 2015),
//    or exactly b_k with full_jitter = false;
//  * it stops with the last error when `max_attempts` attempts have failed, when the next
//    sleep would end past `max_elapsed` since the first attempt (no pointless last sleep),
//    or at once on a non-retryable error; with ctx.err() if ctx is done before an attempt or
//    during a sleep (the sleep is cut short); on the first success with its value;
//  * an exception from fn is not retried: it propagates (exceptions are bugs, not transient);
//  * on_retry(attempt, error, delay) is called before each sleep (logs, metrics, tests).
// Defaults (zero values): initial 100 ms, max 30 s, multiplier 2, max_attempts and max_elapsed
// unlimited (then only success, a non-retryable error or ctx ends it). Bad values (negative
// durations or attempts, a multiplier below 1, max below initial) throw ConfigError.
// Thread-safety: retry itself holds no shared state; `random` must be safe to call from the
// calling fiber (the default is a generator local to the call).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/context.hpp>
#include <spindle/error.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

struct Backoff {
  Duration initial{};      // the first retry's base delay. 0: 100 ms
  Duration max{};          // the cap on any delay. 0: 30 s
  double multiplier = 0;   // growth per retry (>= 1). 0: 2
  bool full_jitter = true; // delay = u * base (u uniform in [0, 1)); false: delay = base

  // The delay before retry number k >= 1 for a uniform draw u in [0, 1), with the defaults
  // filled in. Saturates at max without overflowing.
  [[nodiscard]] Duration delay(int k, double u) const {
    const double init = std::chrono::duration<double>(initial == Duration::zero() ? std::chrono::milliseconds(100) : initial).count();
    const double cap = std::chrono::duration<double>(max == Duration::zero() ? std::chrono::seconds(30) : max).count();
    const double mult = multiplier == 0 ? 2.0 : multiplier;
    double base = init * std::pow(mult, k - 1);
    if (!(base < cap)) base = cap;  // also catches inf
    const double secs = full_jitter ? u * base : base;
    return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(secs));
  }
};

struct RetrySettings {
  int max_attempts = 0;         // attempts in all (>= 0). 0: unlimited
  Duration max_elapsed{};       // from the first attempt. 0: unlimited
  Backoff backoff{};
  std::function<bool(std::error_code)> retryable{};  // null: all but the context's errors
  std::function<void(int attempt, std::error_code error, Duration delay)> on_retry{};
  std::function<double()> random{};  // uniform [0, 1). null: std::mt19937_64 from random_device
  const Clock* clock = nullptr;      // sleeps and elapsed time. null: system_clock()
};

namespace detail {
inline void check_retry(const RetrySettings& s) {
  const Backoff& b = s.backoff;
  if (s.max_attempts < 0) throw ConfigError("patterns: retry: negative max_attempts");
  if (s.max_elapsed < Duration::zero()) throw ConfigError("patterns: retry: negative max_elapsed");
  if (b.initial < Duration::zero() || b.max < Duration::zero()) {
    throw ConfigError("patterns: retry: negative backoff duration");
  }
  if (b.multiplier != 0 && !(b.multiplier >= 1)) throw ConfigError("patterns: retry: multiplier below 1");
  if (b.max != Duration::zero() && b.max < (b.initial == Duration::zero() ? std::chrono::milliseconds(100) : b.initial)) {
    throw ConfigError("patterns: retry: backoff max below initial");
  }
}
inline bool default_retryable(std::error_code ec) {
  return ec != spindle::errc::canceled && ec != spindle::errc::deadline_exceeded;
}
}  // namespace detail

template <class F>
auto retry(const Context& ctx, RetrySettings s, F fn) {
  constexpr bool kTakesCtx = std::is_invocable_v<F&, const Context&>;
  auto attempt_once = [&] {
    if constexpr (kTakesCtx) {
      return detail::invoke_outcome(fn, ctx);
    } else {
      return detail::invoke_outcome(fn);
    }
  };
  using Out = decltype(attempt_once());
  detail::check_retry(s);
  const Clock& clock = clock_or_system(s.clock);
  std::mt19937_64 local_rng;
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  if (!s.random) local_rng.seed(std::random_device{}());
  auto draw = [&] { return s.random ? s.random() : uniform(local_rng); };
  const TimePoint start = clock.now();
  for (int attempt = 1;; ++attempt) {
    if (std::error_code ec = ctx.err()) return Out(ec);
    Out out = attempt_once();
    const std::error_code ec = detail::outcome_error(out);
    if (!ec) return out;
    const bool retryable = s.retryable ? s.retryable(ec) : detail::default_retryable(ec);
    if (!retryable) return out;
    if (s.max_attempts != 0 && attempt >= s.max_attempts) return out;
    const Duration delay = s.backoff.delay(attempt, draw());
    if (s.max_elapsed != Duration::zero() && clock.now() + delay - start > s.max_elapsed) return out;
    if (s.on_retry) s.on_retry(attempt, ec, delay);
    if (std::error_code cec = sleep_for(clock, ctx, delay)) return Out(cec);
  }
}

}  // namespace spindle::patterns
