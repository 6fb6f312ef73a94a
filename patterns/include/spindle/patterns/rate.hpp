// Limiter: a token bucket with golang.org/x/time/rate's semantics, on an injectable clock.
//
//   Limiter lim(100, 10);                      // 100 events/s, bursts of up to 10
//   if (!lim.allow()) return too_many();       // drop
//   if (auto ec = lim.wait(ctx)) return ec;    // or wait for a token (fails fast, see below)
//   Reservation r = lim.reserve();             // or reserve now, act after r.delay()
//
// Semantics (SEMANTICS.md, "x/time/rate"):
//  * A bucket of `burst` tokens, initially full, refilled at `limit` tokens per second. kInf
//    allows everything and ignores the burst; a zero limit refills nothing (the initial tokens
//    can still be spent: Limiter(0, 1) allows exactly one event). A default-constructed Limiter
//    is Go's zero Limiter: it rejects everything.
//  * allow_n(t, n): takes n tokens if available at t, else returns false and changes nothing.
//  * reserve_n(t, n): always takes the tokens (the bucket may go negative: later callers wait
//    longer) and says when the caller may act, unless n exceeds the burst (then !ok() and
//    delay() is kInfDuration). Reservation::cancel gives the tokens back, as far as possible
//    given reservations made after it, and does nothing once its time to act has passed.
//  * wait_n(ctx, n): fails at once, without sleeping, with errc::exceeds_burst when n > burst
//    (limit not kInf), with ctx.err() when ctx is done, and with errc::would_exceed_deadline
//    when the wait would last past ctx's deadline; otherwise reserves and parks on the clock
//    until the time to act (returns {}), or until ctx is done (cancels the reservation so its
//    tokens return, and returns ctx.err()).
//  * every(interval) is 1/interval; an interval <= 0 gives kInf. set_limit/set_burst (and
//    their _at forms) take effect from the given time: tokens accrued so far are kept.
//  * The `t` of the _n/_at forms is a time on the limiter's clock (now() of the Clock given at
//    construction, system_clock() by default), so tests pass times and never sleep. A time
//    earlier than the last one seen accrues nothing and, as in x/time/rate, moves the bucket's
//    clock back to it (Go's TestLimiterJumpBackwards holds here too).
// ctx deadlines are on spindle::Clock: wait_n compares the reservation's delay (clock time)
// with the real time left until ctx's deadline.
//
// Misuse throws ConfigError: a negative or NaN limit, a negative burst, a zero burst with a
// finite limit at construction (such a limiter could never allow anything: a bug; set_burst(0)
// later is allowed, as an operational "stop everything"), a negative n.
//
// Thread-safety: every member may be called concurrently (one short spindle::Mutex, never held
// across a park). Lifetime: a Reservation must not outlive its Limiter.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <system_error>

#include <spindle/context.hpp>
#include <spindle/mutex.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

// Events per second (Go's rate.Limit).
using Limit = double;
inline constexpr Limit kInf = std::numeric_limits<double>::infinity();
// The delay of a reservation that can never be acted upon (Go's InfDuration).
inline constexpr Duration kInfDuration = Duration::max();

// 1/interval; an interval <= 0 gives kInf (Go's rate.Every).
[[nodiscard]] Limit every(Duration interval) noexcept;

namespace detail {

// The bucket arithmetic shared by Limiter and KeyedLimiter (x/time/rate's advance,
// durationFromTokens, tokensFromDuration). Plain data: the owner synchronises.
struct TokenBucket {
  double tokens = 0;
  TimePoint last{};       // the time tokens was computed at
  TimePoint last_event{}; // the latest time to act of any reservation

  // Tokens at t, not stored (t before last counts as last).
  [[nodiscard]] double advance(TimePoint t, Limit limit, int burst) const noexcept {
    const TimePoint from = t < last ? t : last;
    double v = tokens + tokens_from_duration(t - from, limit);
    if (const auto b = static_cast<double>(burst); v > b) v = b;
    return v;
  }
  [[nodiscard]] static double tokens_from_duration(Duration d, Limit limit) noexcept {
    if (limit <= 0) return 0;
    return std::chrono::duration<double>(d).count() * limit;
  }
  [[nodiscard]] static Duration duration_from_tokens(double tokens, Limit limit) noexcept {
    if (limit <= 0) return kInfDuration;
    const double ns = tokens / limit * 1e9;
    if (ns >= static_cast<double>(std::numeric_limits<Duration::rep>::max())) return kInfDuration;
    return std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(static_cast<std::int64_t>(ns)));
  }
  // allow_n's core (x/time/rate's reserveN with no future reservation allowed): takes n
  // tokens at t if there are enough.
  [[nodiscard]] bool take_if_available(TimePoint t, int n, Limit limit, int burst) noexcept {
    if (limit == kInf) return true;
    const double v = advance(t, limit, burst) - n;
    if (v < 0 || n > burst) return false;
    last = t;
    tokens = v;
    last_event = t;
    return true;
  }
};

}  // namespace detail

class Limiter;

// Go's rate.Reservation. A value type; must not outlive its Limiter.
class [[nodiscard]] Reservation {
 public:
  Reservation() = default;  // not ok

  // Whether the limiter can provide the tokens within the maximum wait (see reserve_n).
  [[nodiscard]] bool ok() const noexcept { return ok_; }
  // How long to wait from t before acting: 0 if the time has come, kInfDuration if !ok().
  [[nodiscard]] Duration delay_from(TimePoint t) const noexcept;
  // delay_from(the limiter's clock now).
  [[nodiscard]] Duration delay() const noexcept;
  [[nodiscard]] TimePoint time_to_act() const noexcept { return time_to_act_; }
  // Gives the tokens back (as far as later reservations allow); no effect once the time to act
  // has passed, when !ok(), or a second time.
  void cancel() noexcept;
  void cancel_at(TimePoint t) noexcept;

 private:
  friend class Limiter;
  Limiter* lim_ = nullptr;
  int tokens_ = 0;
  TimePoint time_to_act_{};
  Limit limit_ = 0;  // the limit when the reservation was made
  bool ok_ = false;
};

class Limiter {
 public:
  // Go's zero Limiter: rejects everything (limit 0, burst 0).
  Limiter() noexcept;
  // A full bucket of `burst` tokens refilled at `limit`/s, on `clock` (null: system_clock()).
  // Throws ConfigError for limit < 0 or NaN, burst < 0, or burst == 0 with a finite limit.
  Limiter(Limit limit, int burst, const Clock* clock = nullptr);
  Limiter(const Limiter&) = delete;
  Limiter& operator=(const Limiter&) = delete;

  [[nodiscard]] Limit limit();
  [[nodiscard]] int burst();
  // Tokens available at t (may be negative when reservations are outstanding).
  [[nodiscard]] double tokens_at(TimePoint t);
  [[nodiscard]] double tokens() { return tokens_at(clock_->now()); }

  // allow_n(now, 1).
  [[nodiscard]] bool allow() { return allow_n(clock_->now(), 1); }
  // Takes n tokens if available at t; else false with no side effect. Never blocks.
  [[nodiscard]] bool allow_n(TimePoint t, int n);

  // reserve_n(now, 1).
  [[nodiscard]] Reservation reserve() { return reserve_n(clock_->now(), 1); }
  // Reserves n tokens at t (see the file comment). Never blocks.
  [[nodiscard]] Reservation reserve_n(TimePoint t, int n) { return reserve_impl(t, n, kInfDuration); }

  // wait_n(ctx, 1).
  [[nodiscard]] std::error_code wait(const Context& ctx) { return wait_n(ctx, 1); }
  // Parks until n tokens are available, or fails (see the file comment).
  [[nodiscard]] std::error_code wait_n(const Context& ctx, int n);

  void set_limit(Limit l) { set_limit_at(clock_->now(), l); }
  void set_limit_at(TimePoint t, Limit l);
  void set_burst(int b) { set_burst_at(clock_->now(), b); }
  void set_burst_at(TimePoint t, int b);

  [[nodiscard]] const Clock& clock() const noexcept { return *clock_; }

 private:
  friend class Reservation;
  Reservation reserve_impl(TimePoint t, int n, Duration max_wait);

  const Clock* clock_;
  spindle::Mutex mu_;
  Limit limit_ = 0;
  int burst_ = 0;
  detail::TokenBucket b_;
};

}  // namespace spindle::patterns
