// Result<T>: a value or a std::error_code (C++23's std::expected<T, std::error_code>, which the
// C++20 standard library does not have yet).
//
//   Result<Page> fetch(const Context& ctx, const Url& u);       // a function that can fail
//   if (auto r = fetch(ctx, u)) use(*r); else log(r.error());
//
// The patterns that run user functions producing values (map_bounded, retry, pipeline stages,
// run_with_timeout) take functions returning Result<T>; functions without a value return a plain
// std::error_code (empty = success), as the runtime's ErrGroup does.
//
// Invariants: exactly one of value / error is held; a held error is never the empty code
// (constructing a Result from an empty std::error_code throws BadResultAccess: an "error" that
// says success is a bug that would otherwise surface far away).
// Thread-safety: a plain value type; no internal synchronisation.
#pragma once

#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T> && !std::is_void_v<T>,
                "Result<T>: T must be an object type (use std::error_code for no value)");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::error_code>,
                "Result<std::error_code> is ambiguous");

 public:
  using value_type = T;

  // A value.
  Result(const T& v) : value_(v) {}                   // NOLINT: implicit, like expected
  Result(T&& v) noexcept(std::is_nothrow_move_constructible_v<T>) : value_(std::move(v)) {}  // NOLINT
  template <class... A>
  explicit Result(std::in_place_t, A&&... a) : value_(std::in_place, std::forward<A>(a)...) {}
  // An error (must not be empty).
  Result(std::error_code ec) : error_(ec) {  // NOLINT: implicit, so `return ec;` works
    if (!ec) throw BadResultAccess("patterns::Result: constructed from an empty error code");
  }
  template <class E>
    requires std::is_error_code_enum_v<E>
  Result(E e) : Result(std::error_code(make_error_code(e))) {}  // NOLINT

  [[nodiscard]] bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  // The error; empty when ok().
  [[nodiscard]] std::error_code error() const noexcept { return error_; }

  // The value. Throws BadResultAccess (with the error's message) when there is none.
  [[nodiscard]] T& value() & {
    check();
    return *value_;
  }
  [[nodiscard]] const T& value() const& {
    check();
    return *value_;
  }
  [[nodiscard]] T&& value() && {
    check();
    return std::move(*value_);
  }
  [[nodiscard]] T& operator*() & { return value(); }
  [[nodiscard]] const T& operator*() const& { return value(); }
  [[nodiscard]] T&& operator*() && { return std::move(*this).value(); }
  [[nodiscard]] T* operator->() { return &value(); }
  [[nodiscard]] const T* operator->() const { return &value(); }

  template <class U>
  [[nodiscard]] T value_or(U&& fallback) const& {
    return ok() ? *value_ : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!value_) throw BadResultAccess("patterns::Result: no value: " + error_.message());
  }
  std::optional<T> value_;
  std::error_code error_;
};

namespace detail {

template <class T> struct IsResult : std::false_type {};
template <class T> struct IsResult<Result<T>> : std::true_type {};
template <class T> inline constexpr bool kIsResult = IsResult<std::remove_cvref_t<T>>::value;

// What a user function's return type R means as an outcome:
//  * Result<V>: value V or an error;
//  * std::error_code (or an error-code enum): no value, success when empty;
//  * void: always success, no value;
//  * anything else V: always a success carrying V.
template <class R>
struct Outcome {
  using value_type = R;
  static constexpr bool kHasValue = true;
  static constexpr bool kCanFail = false;
};
template <class V>
struct Outcome<Result<V>> {
  using value_type = V;
  static constexpr bool kHasValue = true;
  static constexpr bool kCanFail = true;
};
template <>
struct Outcome<std::error_code> {
  using value_type = void;
  static constexpr bool kHasValue = false;
  static constexpr bool kCanFail = true;
};
template <>
struct Outcome<void> {
  using value_type = void;
  static constexpr bool kHasValue = false;
  static constexpr bool kCanFail = false;
};

// Invokes f(args...) and returns its outcome as Result<V> (value-carrying kinds) or
// std::error_code (the others).
template <class F, class... A>
auto invoke_outcome(F& f, A&&... a) {
  using R = std::invoke_result_t<F&, A&&...>;
  using O = Outcome<std::remove_cvref_t<R>>;
  if constexpr (std::is_void_v<R>) {
    f(std::forward<A>(a)...);
    return std::error_code{};
  } else if constexpr (std::is_error_code_enum_v<std::remove_cvref_t<R>>) {
    return std::error_code(make_error_code(f(std::forward<A>(a)...)));
  } else if constexpr (std::is_same_v<std::remove_cvref_t<R>, std::error_code>) {
    return std::error_code(f(std::forward<A>(a)...));
  } else if constexpr (O::kCanFail) {
    return Result<typename O::value_type>(f(std::forward<A>(a)...));
  } else {
    return Result<std::remove_cvref_t<R>>(f(std::forward<A>(a)...));
  }
}

// The error of an outcome (empty for success).
template <class V>
std::error_code outcome_error(const Result<V>& r) noexcept {
  return r.error();
}
inline std::error_code outcome_error(const std::error_code& ec) noexcept { return ec; }

}  // namespace detail
}  // namespace spindle::patterns
