// select: wait on several channel operations at once, as Go's select statement does.
//
// Two forms over the same engine (detail::select_impl, Go's selectgo):
//
// 1. Cases with handlers, read like Go:
//
//      spindle::select(
//          spindle::case_recv(jobs, [&](std::optional<Job> j) { ... }),   // j: nullopt if closed
//          spindle::case_send(results, r, [&] { ... }),                    // r moved only if chosen
//          spindle::case_timeout(10ms, [&] { ... }),
//          spindle::case_default([&] { ... }));
//
//    returns the position (0-based) of the case that ran when every handler returns void, or
//    else the chosen handler's result (then all handlers must return the same type). Handlers
//    are optional (`case_recv(done)`), and a receive handler may ignore the value (`[] {...}`).
//    Case objects borrow the channels and values given to them: build them inside the select(...)
//    call, as above.
//
// 2. Index-returning and allocation-free, for hot loops:
//
//      spindle::Select<3> sel;
//      std::optional<int> v;
//      sel.recv(in, &v);         // case 0
//      sel.send(out, x);         // case 1: x moved from only if chosen
//      sel.timeout(1s);          // case 2
//      switch (sel.wait()) { ... }
//
// Semantics (Go's; SEMANTICS.md): channels and values are evaluated once, on entry. If one or
// more cases can proceed, one is chosen uniformly at random; otherwise the default case runs if
// there is one; otherwise select blocks until a case can proceed (or a timeout case's deadline
// passes). A nil channel's case is never chosen; a select with no ready-able case and no default
// or timeout blocks forever. A receive case on a closed channel is ready (and yields nullopt).
// A chosen send case on a closed channel throws ClosedChannelError. The same channel may appear
// in several cases. Unchosen cases have no side effects: a send case's value is moved from only
// if that case wins, and every registration is withdrawn before select returns. The timeout
// case needs no timer channel (the park itself carries the deadline).
//
// Thread-safety: a select may run concurrently with any operation on its channels, from any
// fiber or thread; one Select<N> object is used by one fiber at a time.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <source_location>
#include <tuple>
#include <type_traits>
#include <utility>

#include <spindle/chan.hpp>
#include <spindle/clock.hpp>
#include <spindle/detail/chan_core.hpp>

namespace spindle {

namespace detail {

struct NoHandler {
  void operator()() const noexcept {}
};

template <class F, class T>
decltype(auto) invoke_recv_handler(F& fn, std::optional<T>&& v) {
  if constexpr (std::is_invocable_v<F&, std::optional<T>&&>) {
    return fn(std::move(v));
  } else {
    static_assert(std::is_invocable_v<F&>,
                  "case_recv handler: takes std::optional<T> (or nothing)");
    return fn();
  }
}

template <class T, class F>
struct RecvCase {
  static constexpr bool kChannel = true;
  ChanCore* chan;
  F fn;
  std::source_location where;
  std::optional<T> out{};

  void fill(SelectCase& sc) noexcept {
    sc.chan = chan;
    sc.elem = &out;
    sc.put = &put_optional<T>;
    sc.is_send = false;
  }
  decltype(auto) run() { return invoke_recv_handler(fn, std::move(out)); }
};

template <class T, class F>
struct SendCase {
  static constexpr bool kChannel = true;
  ChanCore* chan;
  T* borrowed;                 // the caller's variable, moved from only if this case wins
  std::optional<T> owned;      // a value converted or copied on entry (Go evaluates it once)
  F fn;
  std::source_location where;

  void fill(SelectCase& sc) noexcept {
    sc.chan = chan;
    sc.elem = borrowed != nullptr ? borrowed : &*owned;
    sc.put = nullptr;
    sc.is_send = true;
  }
  decltype(auto) run() { return fn(); }
};

template <class F>
struct TimeoutCase {
  static constexpr bool kChannel = false;
  TimePoint deadline;
  F fn;
  std::source_location where;
  decltype(auto) run() { return fn(); }
};

template <class F>
struct DefaultCase {
  static constexpr bool kChannel = false;
  F fn;
  std::source_location where;
  decltype(auto) run() { return fn(); }
};

template <class C> struct IsTimeoutCase : std::false_type {};
template <class F> struct IsTimeoutCase<TimeoutCase<F>> : std::true_type {};
template <class C> struct IsDefaultCase : std::false_type {};
template <class F> struct IsDefaultCase<DefaultCase<F>> : std::true_type {};

template <class C>
using CaseResult = decltype(std::declval<C&>().run());

// The result of the variadic select: void if every handler returns void, else their common type.
template <class... Cs>
struct SelectReturn {
  static constexpr bool kAllVoid = (std::is_void_v<CaseResult<Cs>> && ...);
  using First = CaseResult<std::tuple_element_t<0, std::tuple<Cs...>>>;
  static_assert(kAllVoid || (std::is_same_v<CaseResult<Cs>, First> && ...),
                "select: handlers must all return void or all return the same type");
  using type = std::conditional_t<kAllVoid, void, First>;
};
template <>
struct SelectReturn<> {  // select() with no cases: Go's `select {}`, blocks forever
  static constexpr bool kAllVoid = true;
  using type = void;
};

// Which argument ran, and why; `arg` is -1 when none did (timeout or canceled of the outer
// deadline / interrupt in detail_select).
struct ChosenCase {
  int arg;
  ChanStatus status;
};

template <class... Cs>
ChosenCase select_choose(TimePoint outer_deadline, const Interrupt* interrupt, Cs&... cs) {
  constexpr int kChan = (0 + ... + static_cast<int>(Cs::kChannel));
  constexpr int kDefaults = (0 + ... + static_cast<int>(IsDefaultCase<Cs>::value));
  static_assert(kDefaults <= 1, "select: at most one default case");
  std::array<SelectCase, kChan == 0 ? 1 : kChan> sc;  // filled below (chan_core.hpp)
  std::array<int, kChan == 0 ? 1 : kChan> arg_of{};
  int k = 0;
  int arg = 0;
  int default_arg = -1;
  int timeout_arg = -1;
  TimePoint case_deadline = kNoDeadline;
  const std::source_location* where = nullptr;
  auto add = [&](auto& c) {
    using C = std::remove_cvref_t<decltype(c)>;
    if (where == nullptr) where = &c.where;
    if constexpr (C::kChannel) {
      c.fill(sc[static_cast<std::size_t>(k)]);
      arg_of[static_cast<std::size_t>(k)] = arg;
      ++k;
    } else if constexpr (IsDefaultCase<C>::value) {
      default_arg = arg;
    } else {
      if (timeout_arg < 0 || c.deadline < case_deadline) {
        case_deadline = c.deadline;
        timeout_arg = arg;
      }
    }
    ++arg;
  };
  (add(cs), ...);
  const TimePoint deadline = std::min(outer_deadline, case_deadline);
  static const std::source_location kHere = std::source_location::current();
  const SelectResult r = select_impl(sc.data(), kChan, default_arg < 0, deadline, interrupt,
                                     where != nullptr ? *where : kHere);
  if (r.index >= 0) return {arg_of[static_cast<std::size_t>(r.index)], r.status};
  if (r.status == ChanStatus::would_block) return {default_arg, r.status};
  if (r.status == ChanStatus::timeout && timeout_arg >= 0 && case_deadline <= outer_deadline) {
    return {timeout_arg, r.status};
  }
  return {-1, r.status};
}

template <class R, class... Cs>
R select_dispatch(int chosen, Cs&... cs) {
  int a = 0;
  if constexpr (std::is_void_v<R>) {
    ((a++ == chosen ? cs.run() : void()), ...);
  } else {
    std::optional<R> result;
    ((a++ == chosen ? (void)result.emplace(cs.run()) : void()), ...);
    return std::move(*result);
  }
}

}  // namespace detail

// --- case builders ---------------------------------------------------------------------------

// A receive case. The handler gets std::optional<T> (nullopt: the channel is closed and
// drained), or nothing.
template <class T, class F = detail::NoHandler>
[[nodiscard]] detail::RecvCase<T, F> case_recv(const Chan<T>& ch, F fn = {},
                                               std::source_location where = std::source_location::current()) {
  return {ch.detail_core(), std::move(fn), where};
}
template <class T, class F = detail::NoHandler>
[[nodiscard]] detail::RecvCase<T, F> case_recv(const Receiver<T>& ch, F fn = {},
                                               std::source_location where = std::source_location::current()) {
  return {ch.detail_core(), std::move(fn), where};
}

// A send case. A non-const lvalue or rvalue of type T is borrowed and moved from only if this
// case wins (so after `case_send(ch, std::move(v))` loses, v is intact); anything else is
// converted to T on entry.
template <class T, class U, class F = detail::NoHandler>
[[nodiscard]] detail::SendCase<T, F> case_send_impl(detail::ChanCore* c, U&& value, F fn,
                                                    std::source_location where) {
  using V = std::remove_reference_t<U>;
  if constexpr (std::is_same_v<std::remove_cv_t<V>, T> && !std::is_const_v<V>) {
    return {c, std::addressof(value), std::nullopt, std::move(fn), where};
  } else {
    return {c, nullptr, std::optional<T>(std::in_place, std::forward<U>(value)), std::move(fn),
            where};
  }
}
template <class T, class U, class F = detail::NoHandler>
[[nodiscard]] detail::SendCase<T, F> case_send(const Chan<T>& ch, U&& value, F fn = {},
                                               std::source_location where = std::source_location::current()) {
  return case_send_impl<T>(ch.detail_core(), std::forward<U>(value), std::move(fn), where);
}
template <class T, class U, class F = detail::NoHandler>
[[nodiscard]] detail::SendCase<T, F> case_send(const Sender<T>& ch, U&& value, F fn = {},
                                               std::source_location where = std::source_location::current()) {
  return case_send_impl<T>(ch.detail_core(), std::forward<U>(value), std::move(fn), where);
}

// Chosen when nothing else proceeded by `deadline` (Go's `case <-time.After(d)`, without a
// timer channel). With several, the earliest counts.
template <class F = detail::NoHandler>
[[nodiscard]] detail::TimeoutCase<F> case_deadline(TimePoint deadline, F fn = {},
                                                   std::source_location where = std::source_location::current()) {
  return {deadline, std::move(fn), where};
}
template <class Rep, class Period, class F = detail::NoHandler>
[[nodiscard]] detail::TimeoutCase<F> case_timeout(std::chrono::duration<Rep, Period> d, F fn = {},
                                                  std::source_location where = std::source_location::current()) {
  return {deadline_after(d), std::move(fn), where};
}

// Go's `default:` — chosen at once when no other case can proceed.
template <class F = detail::NoHandler>
[[nodiscard]] detail::DefaultCase<F> case_default(F fn = {},
                                                  std::source_location where = std::source_location::current()) {
  return {std::move(fn), where};
}

// --- select ----------------------------------------------------------------------------------

// Runs one case (see the file comment) and its handler. Returns the chosen case's position if
// every handler returns void, else the handler's result. Blocks as described above; throws
// ClosedChannelError if the chosen case is a send on a closed channel (no handler runs).
template <class... Cases>
auto select(Cases&&... cases) {
  using R = typename detail::SelectReturn<std::remove_cvref_t<Cases>...>::type;
  const detail::ChosenCase c = detail::select_choose(kNoDeadline, nullptr, cases...);
  if constexpr (std::is_void_v<R>) {
    detail::select_dispatch<void>(c.arg, cases...);
    return c.arg;
  } else {
    return detail::select_dispatch<R>(c.arg, cases...);
  }
}

// Internal form for context-aware selects: like select, but also gives up at `deadline` or when
// `interrupt` fires. Handlers must return void. Returns the chosen case's position and ok/closed
// (a channel case), would_block (default), timeout (a timeout case if it was the earliest
// deadline, else -1) or canceled (-1); no handler runs when the position is -1.
template <class... Cases>
detail::ChosenCase detail_select(TimePoint deadline, const detail::Interrupt* interrupt,
                                 Cases&&... cases) {
  static_assert(detail::SelectReturn<std::remove_cvref_t<Cases>...>::kAllVoid,
                "detail_select: handlers must return void");
  const detail::ChosenCase c = detail::select_choose(deadline, interrupt, cases...);
  detail::select_dispatch<void>(c.arg, cases...);
  return c;
}

// The index-returning form: up to N cases (of any kind), no allocation. Register cases, then
// wait(); the returned index is the order of registration (each registering call returns it).
// Channels and the variables given are borrowed until wait() returns. Reusable after clear().
template <std::size_t N>
class Select {
  static_assert(N >= 1 && N <= 65535, "Select<N>: 1 <= N <= 65535");

 public:
  Select() = default;
  Select(const Select&) = delete;
  Select& operator=(const Select&) = delete;

  // A receive case. If it wins with a value, *out holds it; if it wins because the channel is
  // closed, *out is nullopt (out is reset on registration). out may be null (value dropped).
  template <class T>
  int recv(const Chan<T>& ch, std::optional<T>* out = nullptr) {
    return add_recv(ch.detail_core(), out);
  }
  template <class T>
  int recv(const Receiver<T>& ch, std::optional<T>* out = nullptr) {
    return add_recv(ch.detail_core(), out);
  }
  template <class T> int recv(Chan<T>&&, std::optional<T>* = nullptr) = delete;      // dangling
  template <class T> int recv(Receiver<T>&&, std::optional<T>* = nullptr) = delete;  // dangling

  // A send case: `value` is moved from only if this case wins.
  template <class T>
  int send(const Chan<T>& ch, T& value) {
    return add_send(ch.detail_core(), std::addressof(value));
  }
  template <class T>
  int send(const Sender<T>& ch, T& value) {
    return add_send(ch.detail_core(), std::addressof(value));
  }
  template <class T> int send(Chan<T>&&, T&) = delete;    // dangling
  template <class T> int send(Sender<T>&&, T&) = delete;  // dangling

  // A case chosen when nothing else proceeded by the deadline (the earliest, if several).
  int deadline(TimePoint tp) {
    const int idx = next_index();
    if (timeout_index_ < 0 || tp < deadline_) {
      deadline_ = tp;
      timeout_index_ = idx;
    }
    return idx;
  }
  template <class Rep, class Period>
  int timeout(std::chrono::duration<Rep, Period> d) {
    return deadline(deadline_after(d));
  }
  // Go's default: chosen at once when nothing else can proceed.
  int default_case() {
    default_index_ = next_index();
    return default_index_;
  }

  // Runs the select; returns the index of the chosen case. Blocks as the file comment says.
  // Throws ClosedChannelError if the chosen case is a send on a closed channel.
  [[nodiscard]] int wait(std::source_location where = std::source_location::current()) {
    return detail_wait(kNoDeadline, nullptr, where).arg;
  }
  // Internal form: also gives up at `deadline` / when `interrupt` fires (then arg == -1, unless
  // a timeout case's deadline was the earliest).
  [[nodiscard]] detail::ChosenCase detail_wait(TimePoint deadline, const detail::Interrupt* interrupt,
                                               std::source_location where) {
    const TimePoint d = std::min(deadline, deadline_);
    const detail::SelectResult r =
        detail::select_impl(cases_.data(), nchan_, default_index_ < 0, d, interrupt, where);
    last_status_ = r.status;
    if (r.index >= 0) return {index_of_[static_cast<std::size_t>(r.index)], r.status};
    if (r.status == ChanStatus::would_block) return {default_index_, r.status};
    if (r.status == ChanStatus::timeout && timeout_index_ >= 0 && deadline_ <= deadline) {
      return {timeout_index_, r.status};
    }
    return {-1, r.status};
  }
  // After wait(): whether the chosen receive case got a value (false: the channel was closed).
  [[nodiscard]] bool recv_ok() const noexcept { return last_status_ == ChanStatus::ok; }

  // Forgets every case (the object can then be reused).
  void clear() noexcept {
    nchan_ = 0;
    ncases_ = 0;
    default_index_ = -1;
    timeout_index_ = -1;
    deadline_ = kNoDeadline;
  }

 private:
  int next_index() {
    if (ncases_ >= static_cast<int>(N)) throw ChanError("Select<N>: more than N cases");
    return ncases_++;
  }
  template <class T>
  int add_recv(detail::ChanCore* c, std::optional<T>* out) {
    const int idx = next_index();
    if (out != nullptr) out->reset();
    detail::SelectCase& sc = cases_[static_cast<std::size_t>(nchan_)];
    sc.chan = c;
    sc.elem = out;
    sc.put = &detail::put_optional<T>;
    sc.is_send = false;
    index_of_[static_cast<std::size_t>(nchan_++)] = idx;
    return idx;
  }
  int add_send(detail::ChanCore* c, void* value) {
    const int idx = next_index();
    detail::SelectCase& sc = cases_[static_cast<std::size_t>(nchan_)];
    sc.chan = c;
    sc.elem = value;
    sc.put = nullptr;
    sc.is_send = true;
    index_of_[static_cast<std::size_t>(nchan_++)] = idx;
    return idx;
  }

  std::array<detail::SelectCase, N> cases_;  // the first nchan_ registered (chan_core.hpp)
  std::array<int, N> index_of_;              // the first nchan_ written
  int nchan_ = 0;
  int ncases_ = 0;
  int default_index_ = -1;
  int timeout_index_ = -1;
  TimePoint deadline_ = kNoDeadline;
  ChanStatus last_status_ = ChanStatus::would_block;
};

}  // namespace spindle
