// CircuitBreaker: the state machine (see circuit_breaker.hpp).
//
// Invariants (under mu_):
//  * counts_.requests/total_successes/total_failures are the sums over buckets_ while closed;
//    in open and half-open, buckets_ is unused (all zero) and counts_ counts the state;
//  * every state change and every tumbling-window reset increments generation_ and zeroes
//    counts_ and buckets_; outcomes carrying another generation are not counted;
//  * in half-open, counts_.requests <= max_requests (probes admitted and not excluded);
//  * queue_ holds the transitions not yet handed to on_state_change, in order; delivering_ is
//    true while one caller is draining it outside the lock.
#include <spindle/patterns/circuit_breaker.hpp>

#include <cmath>
#include <mutex>

namespace spindle::patterns {

const char* to_string(BreakerState s) noexcept {
  switch (s) {
    case BreakerState::closed: return "closed";
    case BreakerState::half_open: return "half-open";
    case BreakerState::open: return "open";
  }
  return "unknown";
}

namespace trip {

TripPolicy consecutive_failures(std::uint32_t n) {
  if (n == 0) throw ConfigError("patterns: trip::consecutive_failures: n must be at least 1");
  return [n](const Counts& c) { return c.consecutive_failures >= n; };
}

TripPolicy failure_ratio(double ratio, std::uint32_t min_requests) {
  if (!(ratio > 0.0 && ratio <= 1.0)) {
    throw ConfigError("patterns: trip::failure_ratio: ratio must be in (0, 1]");
  }
  if (min_requests == 0) {
    throw ConfigError("patterns: trip::failure_ratio: min_requests must be at least 1");
  }
  return [ratio, min_requests](const Counts& c) {
    return c.total_successes + c.total_failures >= min_requests && c.failure_ratio() >= ratio;
  };
}

TripPolicy any_of(TripPolicy a, TripPolicy b) {
  if (!a || !b) throw ConfigError("patterns: trip::any_of: null policy");
  return [a = std::move(a), b = std::move(b)](const Counts& c) { return a(c) || b(c); };
}

}  // namespace trip

namespace {

BreakerSettings with_defaults(BreakerSettings s) {
  if (s.interval < Duration::zero()) throw ConfigError("patterns: CircuitBreaker: negative interval");
  if (s.timeout < Duration::zero()) throw ConfigError("patterns: CircuitBreaker: negative timeout");
  if (s.max_requests == 0) s.max_requests = 1;
  if (s.timeout == Duration::zero()) s.timeout = std::chrono::seconds(60);
  if (s.buckets == 0) s.buckets = 1;
  if (s.buckets > 1) {
    if (s.interval == Duration::zero()) {
      throw ConfigError("patterns: CircuitBreaker: a rolling window (buckets > 1) needs an interval");
    }
    if (s.interval.count() < static_cast<Duration::rep>(s.buckets)) {
      throw ConfigError("patterns: CircuitBreaker: interval shorter than its bucket count");
    }
  }
  if (!s.ready_to_trip) {
    s.ready_to_trip = [](const Counts& c) { return c.consecutive_failures > 5; };
  }
  return s;
}

}  // namespace

CircuitBreaker::CircuitBreaker(BreakerSettings settings)
    : s_(with_defaults(std::move(settings))),
      clock_(clock_or_system(s_.clock)),
      nbuckets_(s_.buckets),
      bucket_len_(s_.interval / s_.buckets),
      buckets_(s_.buckets) {
  new_generation(clock_.now());
}

CircuitBreaker::Ticket::Outcome CircuitBreaker::classify(std::error_code ec) const {
  if (s_.is_excluded && s_.is_excluded(ec)) return Outcome::excluded;
  const bool ok = s_.is_successful ? s_.is_successful(ec) : !ec;
  return ok ? Outcome::success : Outcome::failure;
}

void CircuitBreaker::new_generation(TimePoint now) noexcept {
  ++generation_;
  counts_ = Counts{};
  for (Bucket& b : buckets_) b = Bucket{};
  cur_ = 0;
  bucket_start_ = now;
  switch (state_) {
    case BreakerState::closed:
      expiry_ = s_.interval == Duration::zero() ? TimePoint::max() : now + bucket_len_;
      break;
    case BreakerState::open:
      expiry_ = now + s_.timeout;
      break;
    case BreakerState::half_open:
      expiry_ = TimePoint::max();
      break;
  }
}

void CircuitBreaker::rotate(TimePoint now) noexcept {
  if (nbuckets_ == 1) {  // tumbling: gobreaker's new generation at every interval
    new_generation(now);
    return;
  }
  const Duration::rep slices = (now - bucket_start_) / bucket_len_;
  if (slices >= static_cast<Duration::rep>(nbuckets_)) {
    for (Bucket& b : buckets_) b = Bucket{};
    counts_.requests = counts_.total_successes = counts_.total_failures = 0;
  } else {
    for (Duration::rep i = 0; i < slices; ++i) {
      cur_ = (cur_ + 1) % nbuckets_;
      Bucket& old = buckets_[cur_];
      counts_.requests -= old.requests;
      counts_.total_successes -= old.successes;
      counts_.total_failures -= old.failures;
      old = Bucket{};
    }
  }
  bucket_start_ += slices * bucket_len_;
  expiry_ = bucket_start_ + bucket_len_;
}

void CircuitBreaker::update(TimePoint now) noexcept {
  switch (state_) {
    case BreakerState::closed:
      if (now >= expiry_) rotate(now);
      break;
    case BreakerState::open:
      if (now >= expiry_) set_state(BreakerState::half_open, now);
      break;
    case BreakerState::half_open:
      break;
  }
}

void CircuitBreaker::set_state(BreakerState to, TimePoint now) noexcept {
  if (state_ == to) return;
  const BreakerState from = state_;
  state_ = to;
  ++stats_.state_changes;
  new_generation(now);
  // Allocation failure here would terminate (noexcept); the queue holds at most a handful.
  if (s_.on_state_change) queue_.push_back(Transition{from, to});
}

bool CircuitBreaker::claim_delivery() noexcept {
  if (queue_.empty() || delivering_) return false;
  delivering_ = true;
  return true;
}

void CircuitBreaker::deliver() noexcept {
  std::size_t next = 0;
  for (;;) {
    Transition t;
    {
      std::lock_guard lock(mu_);
      if (next == queue_.size()) {
        queue_.clear();
        delivering_ = false;
        return;
      }
      t = queue_[next++];
    }
    s_.on_state_change(s_.name, t.from, t.to);  // a throwing callback terminates (noexcept)
  }
}

bool CircuitBreaker::time_matters() const noexcept {
  // Closed with no window (expiry_ == max): nothing depends on the time, so the hot path skips
  // the clock read (about 30 ns here, more than the rest of allow()).
  return state_ != BreakerState::closed || expiry_ != TimePoint::max();
}

Result<CircuitBreaker::Ticket> CircuitBreaker::allow() {
  bool must_deliver;
  std::error_code rejected;
  std::uint64_t gen = 0;
  {
    std::lock_guard lock(mu_);
    if (time_matters()) update(clock_.now());
    if (state_ == BreakerState::open) {
      ++stats_.rejected_open;
      rejected = make_error_code(errc::circuit_open);
    } else if (state_ == BreakerState::half_open && counts_.requests >= s_.max_requests) {
      ++stats_.rejected_half_open;
      rejected = make_error_code(errc::too_many_requests);
    } else {
      ++counts_.requests;
      if (state_ == BreakerState::closed) ++bucket().requests;
      ++stats_.admitted;
      gen = generation_;
    }
    must_deliver = claim_delivery();
  }
  if (must_deliver) deliver();
  if (rejected) return rejected;
  return Ticket(this, gen);
}

void CircuitBreaker::on_outcome(std::uint64_t gen, Outcome o) noexcept {
  bool must_deliver;
  {
    std::lock_guard lock(mu_);
    // The time is needed to update a windowed/open state, and for a transition's new
    // generation (only on a failure while closed, or any outcome while half-open).
    const bool need_time = time_matters() || o == Outcome::failure;
    const TimePoint now = need_time ? clock_.now() : TimePoint{};
    if (time_matters()) update(now);
    if (gen != generation_) {
      ++stats_.stale;
    } else {
      switch (o) {
        case Outcome::excluded:
          ++stats_.excluded;
          if (counts_.requests > 0) --counts_.requests;
          if (state_ == BreakerState::closed && bucket().requests > 0) --bucket().requests;
          break;
        case Outcome::success:
          ++stats_.successes;
          ++counts_.total_successes;
          ++counts_.consecutive_successes;
          counts_.consecutive_failures = 0;
          if (state_ == BreakerState::closed) {
            ++bucket().successes;
          } else if (state_ == BreakerState::half_open &&
                     counts_.consecutive_successes >= s_.max_requests) {
            set_state(BreakerState::closed, now);
          }
          break;
        case Outcome::failure:
          ++stats_.failures;
          ++counts_.total_failures;
          ++counts_.consecutive_failures;
          counts_.consecutive_successes = 0;
          if (state_ == BreakerState::closed) {
            ++bucket().failures;
            if (s_.ready_to_trip(counts_)) set_state(BreakerState::open, now);
          } else if (state_ == BreakerState::half_open) {
            set_state(BreakerState::open, now);
          }
          break;
      }
    }
    must_deliver = claim_delivery();
  }
  if (must_deliver) deliver();
}

BreakerState CircuitBreaker::state() {
  const TimePoint now = clock_.now();
  bool must_deliver;
  BreakerState st;
  {
    std::lock_guard lock(mu_);
    update(now);
    st = state_;
    must_deliver = claim_delivery();
  }
  if (must_deliver) deliver();
  return st;
}

Counts CircuitBreaker::counts() {
  const TimePoint now = clock_.now();
  bool must_deliver;
  Counts c;
  {
    std::lock_guard lock(mu_);
    update(now);
    c = counts_;
    must_deliver = claim_delivery();
  }
  if (must_deliver) deliver();
  return c;
}

std::uint64_t CircuitBreaker::generation() {
  const TimePoint now = clock_.now();
  bool must_deliver;
  std::uint64_t g;
  {
    std::lock_guard lock(mu_);
    update(now);
    g = generation_;
    must_deliver = claim_delivery();
  }
  if (must_deliver) deliver();
  return g;
}

BreakerStats CircuitBreaker::stats() {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace spindle::patterns
