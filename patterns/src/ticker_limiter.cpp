// TickerLimiter: a refill fiber on a fixed schedule feeding a channel of tokens.
//
// Invariants: tokens holds at most `burst` values; `stopped` is closed exactly once (by stop());
// `exited` is closed by the refill fiber as its last act, and the destructor waits for it.
#include <spindle/patterns/ticker_limiter.hpp>

#include <atomic>
#include <string>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>

namespace spindle::patterns {

struct TickerLimiter::State {
  State(const Clock* c, Duration p, int burst)
      : clock(c), period(p), tokens(static_cast<std::size_t>(burst)) {}
  const Clock* clock;
  Duration period;
  Chan<char> tokens;
  Chan<char> stopped{0};
  Chan<char> exited{0};
  std::atomic<bool> stop_called{false};
};

namespace {

void refill(const std::shared_ptr<TickerLimiter::State>& s) {
  TimePoint next = s->clock->now() + s->period;
  for (;;) {
    bool stop = false;
    {
      const TimePoint now = s->clock->now();
      ClockTimer t = s->clock->timer(next > now ? next - now : Duration::zero());
      spindle::select(spindle::case_recv(t.C()),
                      spindle::case_recv(s->stopped, [&] { stop = true; }));
    }
    if (stop) break;
    const TimePoint now = s->clock->now();
    // One token per period elapsed since the scheduled tick (a late wake-up catches up).
    const auto ticks = now >= next ? 1 + (now - next) / s->period : 0;
    next += ticks * s->period;
    for (decltype(+ticks) i = 0; i < ticks; ++i) {
      if (s->tokens.try_send('t') != ChanStatus::ok) break;  // full: extra ticks are lost
    }
  }
  s->exited.close();
}

}  // namespace

TickerLimiter::TickerLimiter(Duration period, int burst, const Clock* clock) {
  if (period <= Duration::zero()) throw ConfigError("patterns: TickerLimiter: period must be positive");
  if (burst <= 0) throw ConfigError("patterns: TickerLimiter: burst must be positive");
  s_ = std::make_shared<State>(&clock_or_system(clock), period, burst);
  for (int i = 0; i < burst; ++i) (void)s_->tokens.try_send('t');
  spindle::go(SpawnOptions{.name = "ticker-limiter"}, [s = s_] { refill(s); });
}

TickerLimiter::~TickerLimiter() {
  stop();
  (void)s_->exited.recv();
}

std::error_code TickerLimiter::wait(const Context& ctx) {
  if (std::error_code ec = ctx.err()) return ec;
  if (s_->stop_called.load(std::memory_order_acquire)) return make_error_code(errc::limiter_stopped);
  std::error_code result;
  spindle::select(spindle::case_recv(s_->tokens),
                  spindle::case_recv(s_->stopped,
                                     [&] { result = make_error_code(errc::limiter_stopped); }),
                  spindle::case_recv(ctx.done(), [&] { result = ctx.err(); }));
  return result;
}

bool TickerLimiter::try_acquire() {
  if (s_->stop_called.load(std::memory_order_acquire)) return false;
  return s_->tokens.try_recv().ok();
}

std::size_t TickerLimiter::available() const { return s_->tokens.len(); }

void TickerLimiter::stop() noexcept {
  if (!s_->stop_called.exchange(true, std::memory_order_acq_rel)) s_->stopped.close();
}

}  // namespace spindle::patterns
