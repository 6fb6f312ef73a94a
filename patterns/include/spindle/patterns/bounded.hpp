// Bounded concurrency: run a function over many items with at most N in flight.
//
//   Result<std::vector<Page>> pages = map_bounded(ctx, urls, 8,
//       [](const Context& ctx, const Url& u) -> Result<Page> { return fetch(ctx, u); });
//
//   auto stream = stream_bounded(ctx, urls, 8, fetch);            // results as they finish
//   for (Indexed<Page> p : stream.results()) show(p.index, p.value);
//   if (auto ec = stream.wait()) ...
//
// The seed's boundedExecution started one goroutine per item up front (all of them parked on
// the semaphore: N items cost N stacks at once), could not stop on an error, and had no
// context. Here (errgroup + SetLimit, SEMANTICS.md):
//  * at most `limit` calls of fn run at once, and only that many fibers exist: the next item is
//    started when one finishes;
//  * fn(ctx, item) gets a context that is cancelled on the first failure (or when the caller's
//    ctx is done); no new item is started after that;
//  * map_bounded returns every result in input order, or the first error (an exception from fn
//    is the first failure too, and is rethrown). If the caller's ctx is done before every item
//    has started and no fn failed, it returns ctx.err(): never a partial vector;
//  * stream_bounded delivers Indexed{index, value} in completion order on a channel that is
//    closed when everything finished or after the first failure; wait() joins and returns the
//    first error. Dropping or cancel()ing the stream stops the work and joins it.
// fn returns Result<V>, a plain V (always a success), std::error_code or void; map_bounded
// returns Result<std::vector<V>> for the first two and std::error_code for the others.
// A limit <= 0 throws ConfigError.
//
// Blocking: map_bounded parks until every started call has returned. Thread-safety: fn is
// called concurrently from up to `limit` fibers. Memory ordering: everything each call did
// happens-before map_bounded returns (ErrGroup::wait).
#pragma once

#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/errgroup.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/patterns/combinators.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

// A result with the position of its item in the input.
template <class V>
struct Indexed {
  std::size_t index;
  V value;
};

namespace detail {

inline void check_limit(int limit, const char* what) {
  if (limit <= 0) {
    throw ConfigError(std::string("patterns: ") + what + ": limit must be positive, got " +
                      std::to_string(limit));
  }
}

template <class F, class Item>
using BoundedOutcome = decltype(invoke_outcome(std::declval<F&>(), std::declval<const Context&>(),
                                               std::declval<const Item&>()));

// The value type of an outcome (a placeholder for std::error_code, which has none).
template <class Out>
struct OutValue {
  using type = typename Out::value_type;
};
template <>
struct OutValue<std::error_code> {
  using type = char;
};

}  // namespace detail

// See the file comment. `items` is any range whose elements stay in place during the call.
template <class Range, class F>
auto map_bounded(const Context& ctx, const Range& items, int limit, F fn) {
  using Item = std::remove_cvref_t<decltype(*std::begin(items))>;
  using Out = detail::BoundedOutcome<F, Item>;
  detail::check_limit(limit, "map_bounded");
  constexpr bool kHasValue = !std::is_same_v<Out, std::error_code>;
  using V = typename detail::OutValue<Out>::type;
  using Ret = std::conditional_t<kHasValue, Result<std::vector<V>>, std::error_code>;

  const std::size_t n = static_cast<std::size_t>(std::distance(std::begin(items), std::end(items)));
  std::vector<std::optional<V>> slots(kHasValue ? n : 0);
  std::size_t started = 0;
  std::error_code ec;
  {
    auto [g, gctx] = ErrGroup::with_context(ctx);
    g.set_limit(limit);
    std::size_t i = 0;
    for (const auto& item : items) {
      if (gctx.err()) break;
      g.go([&fn, &slots, gctx = gctx, item_ptr = &item, i]() -> std::error_code {
        auto out = detail::invoke_outcome(fn, gctx, *item_ptr);
        if constexpr (kHasValue) {
          if (!out) return out.error();
          slots[i].emplace(std::move(*out));
          return {};
        } else {
          (void)slots;
          (void)i;
          return out;
        }
      });
      ++i;
      ++started;
    }
    ec = g.wait();  // rethrows the first failure if it was an exception
  }
  if (ec) return Ret(ec);
  if (started < n) return Ret(ctx.err() ? ctx.err() : make_error_code(spindle::errc::canceled));
  if constexpr (kHasValue) {
    std::vector<V> out;
    out.reserve(n);
    for (auto& s : slots) out.push_back(std::move(*s));
    return Ret(std::move(out));
  } else {
    return Ret{};
  }
}

// The streaming variant's handle (see the file comment). Move-only; the destructor cancels the
// work and joins it (it parks).
template <class V>
class BoundedStream {
 public:
  struct State {
    explicit State(const Context& parent, std::size_t buffer)
        : cancelable(with_cancel(parent)), out(buffer) {}
    CancelableContext cancelable;
    Chan<Indexed<V>> out;
    Chan<char> finished{0};     // closed by the coordinator when everything has returned
    std::error_code error;      // the first error, written before `finished` closes
    std::exception_ptr exception;
  };

  explicit BoundedStream(std::shared_ptr<State> s) noexcept : s_(std::move(s)) {}
  BoundedStream(BoundedStream&&) noexcept = default;
  BoundedStream& operator=(BoundedStream&& o) noexcept {
    if (this != &o) {
      join();
      s_ = std::move(o.s_);
    }
    return *this;
  }
  ~BoundedStream() { join(); }

  // Results in completion order; closed when all are delivered or after the first failure.
  [[nodiscard]] Receiver<Indexed<V>> results() const { return s_->out; }
  // Stops starting items and cancels the running ones (their context). Never blocks.
  void cancel() noexcept { s_->cancelable.cancel(); }
  // Waits until every started call has returned, then returns the first error (canceled after
  // cancel()), or rethrows the first exception. Results not yet received are dropped.
  [[nodiscard]] std::error_code wait() {
    (void)s_->finished.recv();
    if (s_->exception) std::rethrow_exception(std::exchange(s_->exception, nullptr));
    return s_->error;
  }

 private:
  void join() noexcept {
    if (!s_) return;
    s_->cancelable.cancel();
    (void)s_->finished.recv();
    s_.reset();
  }
  std::shared_ptr<State> s_;
};

// See the file comment. `items` are moved into the stream (the work outlives the call);
// `buffer` is the result channel's capacity.
template <class T, class F>
auto stream_bounded(const Context& ctx, std::vector<T> items, int limit, F fn,
                    std::size_t buffer = 0) {
  using Out = detail::BoundedOutcome<F, T>;
  static_assert(!std::is_same_v<Out, std::error_code>,
                "stream_bounded: fn must produce a value (Result<V> or V)");
  using V = typename Out::value_type;
  detail::check_limit(limit, "stream_bounded");
  auto s = std::make_shared<typename BoundedStream<V>::State>(ctx, buffer);
  spindle::go(SpawnOptions{.name = "stream_bounded"},
              [s, items = std::move(items), fn = std::move(fn), limit, parent = ctx]() mutable {
    std::error_code ec;
    std::exception_ptr ep;
    std::size_t started = 0;
    {
      auto [g, gctx] = ErrGroup::with_context(s->cancelable.ctx);
      g.set_limit(limit);
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (gctx.err()) break;
        g.go([&, gctx = gctx, i]() -> std::error_code {
          auto r = detail::invoke_outcome(fn, gctx, std::as_const(items[i]));
          if (!r) return r.error();
          Indexed<V> v{i, std::move(*r)};
          const Receiver<std::monostate> done = gctx.done();
          if (!send_or_done(done, Sender<Indexed<V>>(s->out), v)) return gctx.err();
          return {};
        });
        ++started;
      }
      try {
        ec = g.wait();
      } catch (...) {
        ep = std::current_exception();  // handed to BoundedStream::wait()
      }
    }
    if (!ec && !ep && started < items.size()) {
      ec = s->cancelable.ctx.err() ? s->cancelable.ctx.err() : make_error_code(spindle::errc::canceled);
    }
    s->error = ec;
    s->exception = std::move(ep);
    s->out.close();
    s->finished.close();
  });
  return BoundedStream<V>(std::move(s));
}

}  // namespace spindle::patterns
