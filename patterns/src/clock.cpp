// SystemClock (the runtime's timers), ManualClock (a virtual clock for tests), sleep_for and
// timeout_context.
//
// ManualClock invariants (under State::mu): `pending` holds every armed, unfired, unstopped timer
// and callback, keyed by (due time, arming sequence) so iteration is firing order; an entry is
// removed before it fires, so stop() and firing never both succeed; now_ns only grows.
#include <spindle/patterns/clock.hpp>

#include <atomic>
#include <map>
#include <mutex>

#include <spindle/cond.hpp>
#include <spindle/mutex.hpp>
#include <spindle/select.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/time.hpp>

#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

// --- SystemClock -----------------------------------------------------------------------------

namespace {

class SystemTimerImpl final : public ClockTimer::Impl {
 public:
  explicit SystemTimerImpl(Duration d) : t_(d) {}
  bool stop() noexcept override { return t_.stop(); }
  [[nodiscard]] const Receiver<TimePoint>& c() const noexcept { return t_.C(); }

 private:
  spindle::Timer t_;
};

class SystemFuncImpl final : public ClockTimer::Impl {
 public:
  explicit SystemFuncImpl(spindle::FuncTimer t) noexcept : t_(std::move(t)) {}
  bool stop() noexcept override { return t_.stop(); }

 private:
  spindle::FuncTimer t_;
};

}  // namespace

ClockTimer SystemClock::timer(Duration d) const {
  auto impl = std::make_unique<SystemTimerImpl>(d);
  Receiver<TimePoint> c = impl->c();
  return ClockTimer(std::move(c), std::move(impl));
}

ClockFunc SystemClock::after_func(Duration d, std::function<void()> f) const {
  return ClockFunc(std::make_unique<SystemFuncImpl>(spindle::after_func(d, std::move(f))));
}

const Clock& system_clock() noexcept {
  static const SystemClock kClock;
  return kClock;
}

// --- ManualClock -----------------------------------------------------------------------------

struct ManualClock::State {
  struct Entry {
    Chan<TimePoint> ch;          // a timer: its channel (capacity 1)
    std::function<void()> fn;    // an after_func: its callback
  };
  using Key = std::pair<std::int64_t, std::uint64_t>;  // (due ns, arming sequence)

  std::atomic<std::int64_t> now_ns{0};
  mutable spindle::Mutex mu;
  mutable spindle::Cond armed;  // broadcast whenever an entry is added
  std::map<Key, Entry> pending;
  std::uint64_t next_seq = 0;

  Key add(Duration d, Entry e) {
    std::lock_guard lock(mu);
    const std::int64_t now = now_ns.load(std::memory_order_relaxed);
    const std::int64_t dn = d.count() > 0 ? std::chrono::duration_cast<std::chrono::nanoseconds>(d).count() : 0;
    // Saturate: a timer "never" (hours::max()) must not wrap around into the past.
    const std::int64_t due = dn > INT64_MAX - now ? INT64_MAX : now + dn;
    const Key k{due, next_seq++};
    pending.emplace(k, std::move(e));
    armed.broadcast();
    return k;
  }
};

namespace {

class ManualImpl final : public ClockTimer::Impl {
 public:
  ManualImpl(std::weak_ptr<ManualClock::State> s, ManualClock::State::Key k) noexcept
      : s_(std::move(s)), k_(k) {}
  bool stop() noexcept override {
    const std::shared_ptr<ManualClock::State> s = s_.lock();
    if (!s) return false;
    // Destroy the entry (its callback's captures) after the lock: they may own anything.
    ManualClock::State::Entry dead;
    {
      std::lock_guard lock(s->mu);
      auto it = s->pending.find(k_);
      if (it == s->pending.end()) return false;
      dead = std::move(it->second);
      s->pending.erase(it);
    }
    return true;
  }

 private:
  std::weak_ptr<ManualClock::State> s_;
  ManualClock::State::Key k_;
};

std::int64_t to_ns(TimePoint t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
TimePoint from_ns(std::int64_t ns) noexcept {
  return TimePoint(std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace

ManualClock::ManualClock(TimePoint start) : s_(std::make_shared<State>()) {
  s_->now_ns.store(to_ns(start), std::memory_order_relaxed);
}

ManualClock::~ManualClock() {
  // Entries may own anything (callbacks' captures): destroy them outside the lock.
  std::map<State::Key, State::Entry> dead;
  {
    std::lock_guard lock(s_->mu);
    dead.swap(s_->pending);
  }
}

TimePoint ManualClock::now() const noexcept {
  return from_ns(s_->now_ns.load(std::memory_order_acquire));
}

ClockTimer ManualClock::timer(Duration d) const {
  Chan<TimePoint> ch(1);
  const State::Key k = s_->add(d, State::Entry{ch, {}});
  return ClockTimer(Receiver<TimePoint>(ch), std::make_unique<ManualImpl>(s_, k));
}

ClockFunc ManualClock::after_func(Duration d, std::function<void()> f) const {
  const State::Key k = s_->add(d, State::Entry{{}, std::move(f)});
  return ClockFunc(std::make_unique<ManualImpl>(s_, k));
}

void ManualClock::advance(Duration d) {
  if (d < Duration::zero()) throw ConfigError("patterns: ManualClock::advance: negative duration");
  std::int64_t target;
  {
    std::lock_guard lock(s_->mu);
    const std::int64_t now = s_->now_ns.load(std::memory_order_relaxed);
    const std::int64_t dn = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    target = dn > INT64_MAX - now ? INT64_MAX : now + dn;
  }
  for (;;) {
    State::Entry e;
    std::int64_t due;
    {
      std::lock_guard lock(s_->mu);
      auto it = s_->pending.begin();
      if (it == s_->pending.end() || it->first.first > target) {
        if (s_->now_ns.load(std::memory_order_relaxed) < target) {
          s_->now_ns.store(target, std::memory_order_release);
        }
        return;
      }
      due = it->first.first;
      if (s_->now_ns.load(std::memory_order_relaxed) < due) {
        s_->now_ns.store(due, std::memory_order_release);
      }
      e = std::move(it->second);
      s_->pending.erase(it);
    }
    if (e.fn) {
      e.fn();
    } else {
      (void)e.ch.try_send(from_ns(due));  // capacity 1, fired once: never would_block
    }
  }
}

void ManualClock::set(TimePoint t) {
  const TimePoint n = now();
  if (t < n) throw ConfigError("patterns: ManualClock::set: time would go backwards");
  advance(t - n);
}

std::size_t ManualClock::pending() const {
  std::lock_guard lock(s_->mu);
  return s_->pending.size();
}

void ManualClock::block_until_pending(std::size_t n) const {
  std::unique_lock lock(s_->mu);
  s_->armed.wait(lock, [&] { return s_->pending.size() >= n; });
}

// --- helpers ---------------------------------------------------------------------------------

std::error_code sleep_for(const Clock& clock, const Context& ctx, Duration d) {
  if (std::error_code ec = ctx.err()) return ec;
  if (d <= Duration::zero()) return {};
  if (clock.is_steady()) return this_fiber::sleep_for(ctx, d);
  ClockTimer t = clock.timer(d);
  std::error_code result;
  spindle::select(spindle::case_recv(t.C()),
                  spindle::case_recv(ctx.done(), [&] { result = ctx.err(); }));
  return result;
}

ClockContext timeout_context(const Context& parent, Duration d, const Clock& clock) {
  ClockContext out;
  if (clock.is_steady()) {
    auto [ctx, cancel] = with_timeout(parent, d);
    out.ctx = std::move(ctx);
    out.cancel = std::move(cancel);
    return out;
  }
  // The inner context is cancelled by the clock (cause deadline_exceeded); the caller's handle
  // cancels the outer one. Stopping the timer drops the inner CancelFunc, which cancels the
  // inner context too: nothing outlives the ClockContext.
  auto inner = with_cancel_cause(parent);
  auto outer = with_cancel(inner.ctx);
  auto fire = std::make_shared<CancelFunc>(std::move(inner.cancel));
  out.ctx = std::move(outer.ctx);
  out.cancel = std::move(outer.cancel);
  out.timer = clock.after_func(d, [fire] {
    fire->cancel(make_error_code(spindle::errc::deadline_exceeded));
  });
  return out;
}

}  // namespace spindle::patterns
