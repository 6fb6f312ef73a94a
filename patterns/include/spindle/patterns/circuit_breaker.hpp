// CircuitBreaker: stop calling a failing dependency for a while, then probe it carefully.
//
//   CircuitBreaker cb({.name = "billing", .timeout = 30s,
//                      .ready_to_trip = trip::consecutive_failures(5)});
//   std::error_code ec = cb.execute([&] { return billing.charge(order); });   // wrapping form
//   if (ec == patterns::errc::circuit_open) ...                               // rejected fast
//
//   if (auto t = cb.allow()) { t->report(call()); }                           // two-step form
//
// The shape is sony/gobreaker's: a Settings struct whose zero values are documented defaults;
// the state is computed lazily from the clock on every call (no background timer, no fiber);
// a generation number that changes with every state change (and every tumbling window), so a
// result reported for a request admitted before the change is ignored.
//
// States:
//  * closed: requests pass. Outcomes are counted (Counts) over `interval`: a tumbling window
//    (buckets <= 1: the counts clear every interval, gobreaker's behaviour) or a rolling window
//    of `buckets` slices (the counts cover the last `interval`, one slice expiring at a time);
//    interval 0 keeps counts until the next state change. After each failure, ready_to_trip
//    (counts) decides whether to open: e.g. trip::consecutive_failures(n), or
//    trip::failure_ratio(r, min_requests) over the window, or both with trip::any_of.
//  * open: every request is rejected with errc::circuit_open, until `timeout` has passed since
//    opening; the next call then finds the breaker half-open.
//  * half-open: at most max_requests probes are admitted (more callers get
//    errc::too_many_requests); one failure reopens it, max_requests consecutive successes close
//    it.
// Fixed flaws of the seed breakers: a success while closed resets consecutive_failures and old
// failures leave the window, so scattered failures over days do not trip it; half-open admits a
// bounded number of probes instead of every caller.
//
// Outcomes: report(success) / report(std::error_code) (is_successful and is_excluded classify
// codes: by default the empty code is a success, any other a failure, and nothing is
// excluded). An excluded outcome counts as neither and gives its half-open slot back. A Ticket
// dropped without a report counts as a failure (the caller threw past it); a Ticket from an
// older generation is ignored.
//
// State-change callbacks run after the breaker's lock is released, in the order the changes
// happened, exactly once each; a callback may call into the breaker. When several fibers
// change the state at once, one of them delivers all pending callbacks, so a callback may run
// on a fiber other than the one whose call caused the change, shortly after that call returns.
//
// Thread-safety: every member is thread-safe. allow/report take one short lock (a spindle::Mutex
// never held across a park or a user function). Memory ordering: each call is linearised by that
// lock. Lifetime: a Ticket must not outlive its breaker; the breaker may be destroyed once no
// call is in progress and no Ticket is alive.
#pragma once

#include <array>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <spindle/mutex.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

enum class BreakerState : std::uint8_t { closed, half_open, open };
[[nodiscard]] const char* to_string(BreakerState s) noexcept;

// What the breaker counted in the current state (closed: in the current window).
struct Counts {
  std::uint32_t requests = 0;               // admitted (closed: in the window; half-open: probes)
  std::uint32_t total_successes = 0;        // in the window
  std::uint32_t total_failures = 0;         // in the window
  std::uint32_t consecutive_successes = 0;  // since the last failure (or state change)
  std::uint32_t consecutive_failures = 0;   // since the last success (or state change)

  // total_failures / (total_successes + total_failures); 0 when nothing was reported.
  [[nodiscard]] double failure_ratio() const noexcept {
    const std::uint32_t n = total_successes + total_failures;
    return n == 0 ? 0.0 : static_cast<double>(total_failures) / static_cast<double>(n);
  }
  friend bool operator==(const Counts&, const Counts&) = default;
};

using TripPolicy = std::function<bool(const Counts&)>;

// Ready-made trip policies.
namespace trip {
// Opens after n failures in a row (n >= 1, else ConfigError).
[[nodiscard]] TripPolicy consecutive_failures(std::uint32_t n);
// Opens when at least min_requests outcomes were reported in the window and the failure ratio
// is >= ratio (0 < ratio <= 1 and min_requests >= 1, else ConfigError).
[[nodiscard]] TripPolicy failure_ratio(double ratio, std::uint32_t min_requests);
// Opens when either policy says so.
[[nodiscard]] TripPolicy any_of(TripPolicy a, TripPolicy b);
}  // namespace trip

// Settings: every zero value is a documented default (gobreaker's).
struct BreakerSettings {
  std::string name{};               // for callbacks and logs
  std::uint32_t max_requests = 0;   // half-open: probes admitted, and successes to close. 0: 1
  Duration interval{};              // closed: the counting window. 0: counts kept until a change
  std::uint32_t buckets = 0;        // slices of a rolling window. 0 or 1: tumbling window
  Duration timeout{};               // open -> half-open after this. 0: 60 s
  TripPolicy ready_to_trip{};       // null: consecutive_failures > 5 (gobreaker's default)
  std::function<void(std::string_view name, BreakerState from, BreakerState to)> on_state_change{};
  std::function<bool(std::error_code)> is_successful{};  // null: !ec
  std::function<bool(std::error_code)> is_excluded{};    // null: nothing is excluded
  const Clock* clock = nullptr;     // null: system_clock()
};

// Totals since construction (they are not windowed).
struct BreakerStats {
  std::uint64_t admitted = 0;
  std::uint64_t rejected_open = 0;         // errc::circuit_open
  std::uint64_t rejected_half_open = 0;    // errc::too_many_requests
  std::uint64_t successes = 0;
  std::uint64_t failures = 0;
  std::uint64_t excluded = 0;
  std::uint64_t stale = 0;                 // outcomes ignored: reported for an older generation
  std::uint64_t state_changes = 0;
};

class CircuitBreaker {
 public:
  // Throws ConfigError for a negative interval or timeout, or a rolling window (buckets > 1)
  // whose interval is zero or shorter than `buckets` nanoseconds.
  explicit CircuitBreaker(BreakerSettings settings = {});
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;
  ~CircuitBreaker() = default;

  // An admitted request's pass: report its outcome exactly once (or let it go: a failure).
  class [[nodiscard]] Ticket {
   public:
    Ticket(Ticket&& o) noexcept : cb_(std::exchange(o.cb_, nullptr)), gen_(o.gen_) {}
    Ticket& operator=(Ticket&& o) noexcept {
      if (this != &o) {
        finish(Outcome::failure);
        cb_ = std::exchange(o.cb_, nullptr);
        gen_ = o.gen_;
      }
      return *this;
    }
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    ~Ticket() { finish(Outcome::failure); }

    void success() noexcept { finish(Outcome::success); }
    void failure() noexcept { finish(Outcome::failure); }
    // Neither success nor failure (e.g. the caller cancelled): frees a half-open slot.
    void exclude() noexcept { finish(Outcome::excluded); }
    void report(bool ok) noexcept { finish(ok ? Outcome::success : Outcome::failure); }
    // Classified by the settings' is_excluded / is_successful.
    void report(std::error_code ec) {
      if (cb_ != nullptr) finish(cb_->classify(ec));
    }
    // The generation the request was admitted in.
    [[nodiscard]] std::uint64_t generation() const noexcept { return gen_; }
    // False once reported.
    [[nodiscard]] bool pending() const noexcept { return cb_ != nullptr; }

   private:
    friend class CircuitBreaker;
    Ticket(CircuitBreaker* cb, std::uint64_t gen) noexcept : cb_(cb), gen_(gen) {}
    enum class Outcome : std::uint8_t { success, failure, excluded };
    void finish(Outcome o) noexcept {
      if (CircuitBreaker* cb = std::exchange(cb_, nullptr)) cb->on_outcome(gen_, o);
    }
    CircuitBreaker* cb_;
    std::uint64_t gen_;
  };

  // Admits a request (a Ticket) or rejects it: errc::circuit_open while open,
  // errc::too_many_requests when half-open and every probe slot is taken. Never blocks.
  [[nodiscard]] Result<Ticket> allow();

  // The wrapping form: if admitted, runs fn() and reports its outcome; returns fn's outcome or
  // the rejection. fn returns void (success), std::error_code, Result<V> or a plain value V;
  // execute returns std::error_code for the first two, Result<V> for the others. An exception
  // from fn counts as a failure and propagates.
  template <class F>
  auto execute(F&& fn) {
    using Out = decltype(detail::invoke_outcome(fn));
    Result<Ticket> t = allow();
    if (!t) return Out(t.error());
    std::exception_ptr error;
    std::optional<Out> out;
    try {
      out.emplace(detail::invoke_outcome(fn));
    } catch (...) {
      error = std::current_exception();
    }
    if (error) {
      t->failure();
      std::rethrow_exception(error);
    }
    t->report(detail::outcome_error(*out));
    return std::move(*out);
  }

  // The state now (opening -> half-open happens here too, lazily). Never blocks for long.
  [[nodiscard]] BreakerState state();
  // The counts of the current state / window.
  [[nodiscard]] Counts counts();
  // Changes with every state change and every tumbling-window reset.
  [[nodiscard]] std::uint64_t generation();
  [[nodiscard]] BreakerStats stats();
  [[nodiscard]] const std::string& name() const noexcept { return s_.name; }

 private:
  using Outcome = Ticket::Outcome;
  struct Transition {
    BreakerState from, to;
  };
  struct Bucket {
    std::uint32_t requests = 0, successes = 0, failures = 0;
  };

  [[nodiscard]] Outcome classify(std::error_code ec) const;
  void on_outcome(std::uint64_t gen, Outcome o) noexcept;
  // The members below marked "under mu_" are called with mu_ held.
  [[nodiscard]] bool time_matters() const noexcept;         // under mu_
  void update(TimePoint now) noexcept;                       // under mu_: lazy time effects
  void set_state(BreakerState to, TimePoint now) noexcept;   // under mu_
  void new_generation(TimePoint now) noexcept;               // under mu_
  void rotate(TimePoint now) noexcept;                       // under mu_: closed, windowed
  Bucket& bucket() noexcept { return buckets_[cur_]; }
  // Under mu_, last thing before unlocking: whether this caller must deliver callbacks.
  [[nodiscard]] bool claim_delivery() noexcept;
  void deliver() noexcept;  // after unlocking, if claim_delivery() said so

  BreakerSettings s_;
  const Clock& clock_;
  std::uint32_t nbuckets_;
  Duration bucket_len_{};

  spindle::Mutex mu_;
  BreakerState state_ = BreakerState::closed;
  std::uint64_t generation_ = 0;
  Counts counts_;
  std::vector<Bucket> buckets_;     // closed with a window: slices, oldest after cur_
  std::size_t cur_ = 0;
  TimePoint bucket_start_{};        // closed with a window: start of the current slice
  TimePoint expiry_{};              // open: when to go half-open; closed: end of current slice
  BreakerStats stats_;
  std::vector<Transition> queue_;   // transitions not yet delivered to on_state_change
  bool delivering_ = false;
};

}  // namespace spindle::patterns
