// TickerLimiter: the seeds' "simple rate limiter" (a ticker feeding a buffered channel of
// tokens), made stoppable and exact.
//
//   TickerLimiter lim(10ms, 5);                // a token every 10 ms, at most 5 stored
//   if (auto ec = lim.wait(ctx)) return ec;    // parks until a token (or ctx / stop)
//
// Differences from the seed, which are the reasons to use this rather than copy it:
//  * its ticker goroutine ran forever; here stop() (or the destructor) ends the refill fiber
//    and the destructor waits for it to exit, so nothing leaks;
//  * refills follow a fixed schedule (start + k * period) instead of drifting by the
//    scheduling delay of each tick, and a late refill adds one token per period that elapsed
//    (up to the free room), where a Go ticker drops the ticks it missed;
//  * waits take a context and fail with errc::limiter_stopped after stop() instead of hanging.
// For anything beyond this shape (reservations, n tokens at once, deadlines checked up front)
// use Limiter, which needs no fiber at all.
//
// Tokens are values in a Chan, so waiters are served first-come first-served by the channel.
// Thread-safety: every member may be called concurrently. Needs a running runtime (it spawns
// the refill fiber). Lifetime: the destructor stops and joins the refill fiber (it parks).
#pragma once

#include <cstddef>
#include <memory>
#include <system_error>

#include <spindle/context.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

class TickerLimiter {
 public:
  // Full with `burst` tokens; one more every `period` on `clock` (null: system_clock()).
  // Throws ConfigError for period <= 0 or burst <= 0.
  TickerLimiter(Duration period, int burst, const Clock* clock = nullptr);
  TickerLimiter(const TickerLimiter&) = delete;
  TickerLimiter& operator=(const TickerLimiter&) = delete;
  ~TickerLimiter();

  // Takes a token, parking until one is available. Returns {} with the token, ctx.err() if ctx
  // is done first (at once if it already is), errc::limiter_stopped after stop().
  [[nodiscard]] std::error_code wait(const Context& ctx = background());
  // Takes a token if one is available now. False after stop().
  [[nodiscard]] bool try_acquire();
  // Tokens stored now (a racy snapshot).
  [[nodiscard]] std::size_t available() const;
  // Ends refilling; waiters and later calls fail with limiter_stopped. Idempotent, never blocks.
  void stop() noexcept;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

}  // namespace spindle::patterns
