// Limiter and Reservation: golang.org/x/time/rate's algorithm (rate.go), statement for
// statement where it matters, on patterns::Clock.
//
// Invariants (under Limiter::mu_): b_.tokens <= burst_ as of b_.last; b_.last only moves
// forward; b_.last_event is the latest time to act handed out (Reservation::cancel uses it to
// tell how many tokens were reserved after a given reservation).
#include <spindle/patterns/rate.hpp>

#include <mutex>
#include <utility>

#include <spindle/select.hpp>

namespace spindle::patterns {

Limit every(Duration interval) noexcept {
  if (interval <= Duration::zero()) return kInf;
  return 1.0 / std::chrono::duration<double>(interval).count();
}

namespace {

void check_limit(Limit l, const char* where) {
  if (std::isnan(l) || l < 0) {
    throw ConfigError(std::string("patterns: ") + where + ": limit must be >= 0 (or kInf)");
  }
}
void check_n(int n, const char* where) {
  if (n < 0) throw ConfigError(std::string("patterns: ") + where + ": negative n");
}

}  // namespace

Limiter::Limiter() noexcept : clock_(&system_clock()) {}

Limiter::Limiter(Limit limit, int burst, const Clock* clock)
    : clock_(&clock_or_system(clock)), limit_(limit), burst_(burst) {
  check_limit(limit, "Limiter");
  if (burst < 0) throw ConfigError("patterns: Limiter: negative burst");
  if (burst == 0 && limit != kInf) {
    throw ConfigError("patterns: Limiter: burst must be positive unless the limit is kInf "
                      "(a zero burst allows nothing)");
  }
  b_.tokens = burst;
  b_.last = clock_->now();
}

Limit Limiter::limit() {
  std::lock_guard lock(mu_);
  return limit_;
}

int Limiter::burst() {
  std::lock_guard lock(mu_);
  return burst_;
}

double Limiter::tokens_at(TimePoint t) {
  std::lock_guard lock(mu_);
  return b_.advance(t, limit_, burst_);
}

bool Limiter::allow_n(TimePoint t, int n) {
  check_n(n, "Limiter::allow_n");
  std::lock_guard lock(mu_);
  return b_.take_if_available(t, n, limit_, burst_);
}

Reservation Limiter::reserve_impl(TimePoint t, int n, Duration max_wait) {
  check_n(n, "Limiter::reserve_n");
  Reservation r;
  r.lim_ = this;
  std::lock_guard lock(mu_);
  if (limit_ == kInf) {
    r.ok_ = true;
    r.tokens_ = n;
    r.time_to_act_ = t;
    r.limit_ = limit_;
    return r;
  }
  double tokens = b_.advance(t, limit_, burst_) - n;
  Duration wait{};
  if (tokens < 0) wait = detail::TokenBucket::duration_from_tokens(-tokens, limit_);
  // A wait of kInfDuration (a zero limit with the bucket spent) can never be acted upon.
  r.ok_ = n <= burst_ && wait <= max_wait && wait != kInfDuration;
  r.limit_ = limit_;
  if (r.ok_) {
    r.tokens_ = n;
    r.time_to_act_ = t + wait;
    b_.last = t;
    b_.tokens = tokens;
    b_.last_event = r.time_to_act_;
  }
  return r;
}

std::error_code Limiter::wait_n(const Context& ctx, int n) {
  check_n(n, "Limiter::wait_n");
  int burst;
  Limit limit;
  {
    std::lock_guard lock(mu_);
    burst = burst_;
    limit = limit_;
  }
  if (n > burst && limit != kInf) return make_error_code(errc::exceeds_burst);
  if (std::error_code ec = ctx.err()) return ec;
  const TimePoint t = clock_->now();
  Duration wait_limit = kInfDuration;
  if (const auto d = ctx.deadline()) {
    const TimePoint real_now = spindle::now();  // context deadlines run on the runtime clock
    wait_limit = *d > real_now ? *d - real_now : Duration::zero();
  }
  Reservation r = reserve_impl(t, n, wait_limit);
  if (!r.ok()) return make_error_code(errc::would_exceed_deadline);
  const Duration delay = r.delay_from(t);
  if (delay == Duration::zero()) return {};
  ClockTimer timer = clock_->timer(delay);
  bool canceled = false;
  spindle::select(spindle::case_recv(timer.C()),
                  spindle::case_recv(ctx.done(), [&] { canceled = true; }));
  if (!canceled) return {};
  r.cancel_at(clock_->now());  // give the tokens back so that others may proceed sooner
  return ctx.err();
}

void Limiter::set_limit_at(TimePoint t, Limit l) {
  check_limit(l, "Limiter::set_limit");
  std::lock_guard lock(mu_);
  b_.tokens = b_.advance(t, limit_, burst_);
  b_.last = t;
  limit_ = l;
}

void Limiter::set_burst_at(TimePoint t, int b) {
  if (b < 0) throw ConfigError("patterns: Limiter::set_burst: negative burst");
  std::lock_guard lock(mu_);
  b_.tokens = b_.advance(t, limit_, burst_);
  b_.last = t;
  burst_ = b;
}

Duration Reservation::delay_from(TimePoint t) const noexcept {
  if (!ok_) return kInfDuration;
  return time_to_act_ > t ? time_to_act_ - t : Duration::zero();
}

Duration Reservation::delay() const noexcept {
  return lim_ == nullptr ? kInfDuration : delay_from(lim_->clock_->now());
}

void Reservation::cancel() noexcept {
  if (lim_ != nullptr) cancel_at(lim_->clock_->now());
}

void Reservation::cancel_at(TimePoint t) noexcept {
  if (!ok_ || lim_ == nullptr) return;
  Limiter& lim = *lim_;
  std::lock_guard lock(lim.mu_);
  if (lim.limit_ == kInf || tokens_ == 0 || time_to_act_ < t) return;
  const int n = std::exchange(tokens_, 0);  // a second cancel of this object does nothing
  // Tokens reserved after this reservation (between its time to act and the last one handed
  // out) must not be restored: they are spoken for.
  const double restore =
      n - detail::TokenBucket::tokens_from_duration(lim.b_.last_event - time_to_act_, limit_);
  if (restore <= 0) return;
  double tokens = lim.b_.advance(t, lim.limit_, lim.burst_) + restore;
  if (const auto b = static_cast<double>(lim.burst_); tokens > b) tokens = b;
  lim.b_.last = t;
  lim.b_.tokens = tokens;
  if (time_to_act_ == lim.b_.last_event && limit_ > 0) {
    // This was the latest reservation: the last event is now the one before it, if that is
    // still in the future.
    const TimePoint prev = time_to_act_ - detail::TokenBucket::duration_from_tokens(n, limit_);
    if (prev >= t) lim.b_.last_event = prev;
  }
}

}  // namespace spindle::patterns
