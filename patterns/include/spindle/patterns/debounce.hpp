// Debouncer and Throttler: call a function once input settles (debounce), or at most once per
// interval (throttle), with lodash's well-known options, on an injectable clock.
//
//   Debouncer<std::string> save({.wait = 500ms, .max_wait = 5s},
//                               [&](std::string text) { store(text); });
//   save.call(editor.text());          // on every keystroke; store() runs 500 ms after the last
//
//   Throttler<> redraw({.interval = 16ms}, [&] { paint(); });   // at most ~60 per second
//
// Semantics (lodash's debounce/throttle, which most people mean by these words):
//  * a call opens a wait window if none is open; the window lasts until `wait` has passed
//    since the latest call;
//  * leading: the call that opens a window invokes fn at once (with its argument);
//  * trailing (default): when the window ends, fn is invoked with the latest argument, if a
//    call arrived that has not been invoked yet (with leading too, a lone call is invoked once,
//    not twice);
//  * max_wait: fn is never held back longer than max_wait since the window opened or fn was
//    last invoked, however steadily calls keep coming (0: no limit; else >= wait);
//  * Throttler is debounce with leading (default on) and max_wait == wait == interval: fn runs
//    at most once per interval, at the start and (trailing) with the latest argument.
// The seed's debounce started a new time.AfterFunc per call and ran f in a goroutine per firing
// (two can overlap), had no max-wait and no leading edge, and could not be stopped.
// Here invocations never overlap and happen in order: each is queued under the lock and run
// by whichever caller is not already running one, after the lock is released (so fn may call
// back into the debouncer). With SystemClock a trailing invocation runs in a timer fiber; with
// ManualClock it runs inside advance(), so tests see it when advance() returns.
// The timer is re-armed only when a window opens or its time came too early, not on every call.
//
// flush() invokes a pending call now and closes the window; cancel() drops it and closes the
// window. The destructor cancels and waits for an invocation in progress (do not destroy the
// debouncer from inside fn). An exception from fn propagates to the caller that ran it
// (call/flush for the leading edge and flush; advance() with ManualClock; with SystemClock the
// timer fiber, which ends the process as an unrecovered panic would).
// Settings: wait > 0, max_wait == 0 or >= wait, and at least one of leading/trailing, else
// ConfigError.
//
// Thread-safety: every member may be called concurrently. Memory ordering: a call()
// happens-before the invocation that carries its argument.
#pragma once

#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>

#include <spindle/cond.hpp>
#include <spindle/mutex.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

struct DebounceSettings {
  Duration wait{};               // > 0
  bool leading = false;          // invoke on the call that opens a window
  bool trailing = true;          // invoke when the window ends, with the latest argument
  Duration max_wait{};           // 0: none; else >= wait
  const Clock* clock = nullptr;  // null: system_clock()
};

struct ThrottleSettings {
  Duration interval{};           // > 0
  bool leading = true;
  bool trailing = true;
  const Clock* clock = nullptr;
};

struct DebounceStats {
  std::uint64_t calls = 0;
  std::uint64_t invocations = 0;
};

template <class T = void>
class Debouncer {
  using Arg = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

 public:
  using Fn = std::conditional_t<std::is_void_v<T>, std::function<void()>, std::function<void(Arg)>>;

  Debouncer(DebounceSettings s, Fn fn) : st_(std::make_shared<State>(check(s), std::move(fn))) {}
  Debouncer(const Debouncer&) = delete;
  Debouncer& operator=(const Debouncer&) = delete;
  ~Debouncer() {
    std::unique_lock lock(st_->mu);
    st_->closed = true;
    st_->has_pending = false;
    st_->queue.clear();
    st_->disarm();
    st_->idle.wait(lock, [&] { return !st_->delivering; });
  }

  // Records a call (see the file comment). Never blocks, except to run a leading invocation.
  void call()
    requires std::is_void_v<T>
  {
    State::call(st_, std::monostate{});
  }
  void call(Arg v)
    requires(!std::is_void_v<T>)
  {
    State::call(st_, std::move(v));
  }

  // Invokes the pending call (if any) now and closes the window.
  void flush() { State::flush(st_); }
  // Drops the pending call (if any) and closes the window.
  void cancel() {
    std::lock_guard lock(st_->mu);
    st_->has_pending = false;
    st_->last.reset();
    st_->window = false;
    st_->disarm();
  }
  // Whether a call is waiting for its trailing invocation.
  [[nodiscard]] bool pending() const {
    std::lock_guard lock(st_->mu);
    return st_->has_pending;
  }
  [[nodiscard]] DebounceStats stats() const {
    std::lock_guard lock(st_->mu);
    return st_->stats;
  }

 private:
  static DebounceSettings check(DebounceSettings s) {
    if (s.wait <= Duration::zero()) throw ConfigError("patterns: Debouncer: wait must be positive");
    if (s.max_wait < Duration::zero() || (s.max_wait != Duration::zero() && s.max_wait < s.wait)) {
      throw ConfigError("patterns: Debouncer: max_wait must be 0 or at least wait");
    }
    if (!s.leading && !s.trailing) {
      throw ConfigError("patterns: Debouncer: neither leading nor trailing: fn would never run");
    }
    return s;
  }

  // Shared with the timer callbacks (which hold it weakly: a stopped timer keeps nothing alive).
  // Invariants (under mu): has_pending => last engaged; armed => a timer with generation gen is
  // scheduled at armed_due; window => a timer is armed; queue holds arguments to invoke, in
  // order; delivering is true while one caller runs them outside the lock.
  struct State {
    State(DebounceSettings s, Fn f) : set(s), clock(clock_or_system(s.clock)), fn(std::move(f)) {}
    const DebounceSettings set;
    const Clock& clock;
    const Fn fn;

    mutable spindle::Mutex mu;
    spindle::Cond idle;              // broadcast when delivering turns false
    bool closed = false;
    bool window = false;
    bool has_pending = false;
    std::optional<Arg> last;
    TimePoint last_call{};
    TimePoint anchor{};              // window opened or fn last invoked (for max_wait)
    bool armed = false;
    TimePoint armed_due{};
    std::uint64_t gen = 0;
    ClockFunc timer;
    std::deque<Arg> queue;
    bool delivering = false;
    DebounceStats stats;

    [[nodiscard]] TimePoint deadline() const {
      TimePoint d = last_call + set.wait;
      if (has_pending && set.max_wait != Duration::zero() && anchor + set.max_wait < d) {
        d = anchor + set.max_wait;
      }
      return d;
    }
    void disarm() {
      if (armed) (void)timer.stop();
      armed = false;
      ++gen;
    }
    void arm(const std::shared_ptr<State>& self, TimePoint now) {
      const TimePoint due = deadline();
      if (armed && armed_due <= due) return;  // it will fire in time and re-arm if need be
      disarm();
      armed = true;
      armed_due = due;
      timer = clock.after_func(due - now, [w = std::weak_ptr<State>(self), g = gen] {
        if (auto s = w.lock()) on_timer(s, g);
      });
    }
    void invoke_pending(TimePoint now) {
      queue.push_back(std::move(*last));
      last.reset();
      has_pending = false;
      anchor = now;
    }
    [[nodiscard]] bool claim_delivery() {
      if (queue.empty() || delivering) return false;
      delivering = true;
      return true;
    }

    static void call(const std::shared_ptr<State>& s, Arg v) {
      const TimePoint now = s->clock.now();
      bool deliver_now;
      {
        std::lock_guard lock(s->mu);
        if (s->closed) return;
        ++s->stats.calls;
        s->last = std::move(v);
        s->last_call = now;
        if (!s->window) {
          s->window = true;
          s->anchor = now;
          if (s->set.leading) {
            s->has_pending = true;
            s->invoke_pending(now);
          } else {
            s->has_pending = true;
          }
        } else {
          s->has_pending = true;
        }
        s->arm(s, now);
        deliver_now = s->claim_delivery();
      }
      if (deliver_now) deliver(s);
    }

    static void flush(const std::shared_ptr<State>& s) {
      bool deliver_now;
      {
        std::lock_guard lock(s->mu);
        if (s->has_pending) s->invoke_pending(s->clock.now());
        s->window = false;
        s->disarm();
        deliver_now = s->claim_delivery();
      }
      if (deliver_now) deliver(s);
    }

    static void on_timer(const std::shared_ptr<State>& s, std::uint64_t g) {
      const TimePoint now = s->clock.now();
      bool deliver_now;
      {
        std::lock_guard lock(s->mu);
        if (s->closed || g != s->gen) return;  // stopped or superseded
        s->armed = false;
        if (s->has_pending && s->set.max_wait != Duration::zero() &&
            now >= s->anchor + s->set.max_wait) {
          s->invoke_pending(now);
        }
        if (now >= s->last_call + s->set.wait) {
          if (s->has_pending) {
            if (s->set.trailing) {
              s->invoke_pending(now);
            } else {
              s->has_pending = false;  // leading only: calls inside the window are dropped
              s->last.reset();
            }
          }
          s->window = false;
        } else {
          s->arm(s, now);
        }
        deliver_now = s->claim_delivery();
      }
      if (deliver_now) deliver(s);
    }

    // Runs queued invocations in order until none is left. Called without the lock.
    static void deliver(const std::shared_ptr<State>& s) {
      for (;;) {
        std::optional<Arg> a;
        {
          std::lock_guard lock(s->mu);
          if (s->queue.empty()) {
            s->delivering = false;
            s->idle.broadcast();
            return;
          }
          a.emplace(std::move(s->queue.front()));
          s->queue.pop_front();
          ++s->stats.invocations;
        }
        std::exception_ptr error;
        try {
          if constexpr (std::is_void_v<T>) {
            s->fn();
          } else {
            s->fn(std::move(*a));
          }
        } catch (...) {
          error = std::current_exception();
        }
        if (error) {  // hand over delivery (outside the handler: locking may park), then rethrow
          {
            std::lock_guard lock(s->mu);
            s->delivering = false;
            s->idle.broadcast();
          }
          std::rethrow_exception(error);
        }
      }
    }
  };

  std::shared_ptr<State> st_;
};

// Throttle: Debouncer with leading (default) and max_wait == wait == interval.
template <class T = void>
class Throttler : public Debouncer<T> {
 public:
  Throttler(ThrottleSettings s, typename Debouncer<T>::Fn fn)
      : Debouncer<T>(DebounceSettings{.wait = s.interval, .leading = s.leading, .trailing = s.trailing,
                                      .max_wait = s.interval, .clock = s.clock},
                     std::move(fn)) {}
};

}  // namespace spindle::patterns
