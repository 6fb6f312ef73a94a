// Channel combinators: the "Concurrency in Go" pipeline toolkit (or-done, tee, bridge, fan-in,
// fan-out, generator, take), with a Context where Go threads a `done` channel.
//
//   auto nums  = generator(ctx, [i = 0]() mutable -> std::optional<int> { return i++; });
//   auto first = take(ctx, nums, 10);                          // 0..9, then closed
//   auto [a, b] = tee<2>(ctx, first);                          // both see 0..9
//   auto sq = fan_out(ctx, a, 4, [](int v) { return v * v; }); // 4 workers, 4 outputs
//   for (int v : merge(ctx, sq)) ...                           // fan-in
//
// Every combinator returns fresh output channels it owns and spawns the fibers that feed them.
// Guarantees, common to all:
//  * the outputs are closed when the inputs are exhausted (closed and drained) or ctx is done,
//    and the feeding fibers end then: cancel ctx to stop a pipeline whose consumer went away
//    (a fiber blocked sending to an unread output is released by the cancellation);
//  * values are forwarded in order (per input, for merge), each exactly once (tee: once to each
//    output), none duplicated; after ctx is done, as with Go's select, a value that was already
//    ready may still be forwarded, and values still in flight are dropped;
//  * `buffer` is the capacity of each output channel (0: unbuffered, a hand-off).
// User functions (fan_out's fn, generator's next) run in the combinator's fibers; an exception
// escaping them ends the process, as a panic in a goroutine would: catch inside if they can
// fail, and send errors as values.
// The building blocks recv_or_done / send_or_done are Go's two-case select idiom.
//
// Thread-safety: outputs are ordinary channels (any number of consumers). Needs a running
// runtime (they spawn fibers).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {

// A Chan<T> or Receiver<T> (anything that converts to Receiver<value_type>).
template <class C>
concept ReceivableChannel = requires { typename C::value_type; } &&
                            std::is_convertible_v<const C&, Receiver<typename C::value_type>>;

// Receives from `in` unless `done` (a Context's done() channel) is ready first. nullopt when
// `in` is closed and drained or done is ready.
template <class T>
[[nodiscard]] std::optional<T> recv_or_done(const Receiver<std::monostate>& done, const Receiver<T>& in) {
  // Select<N> rather than spindle::select(...): the allocation-free form, and one without a
  // function-local static (GCC 12 + ASan mis-links those when inline templates instantiate
  // spindle::select identically in several translation units).
  std::optional<T> out;
  Select<2> sel;
  const int got = sel.recv(in, &out);
  (void)sel.recv(done);
  if (sel.wait() != got) out.reset();
  return out;
}

// Sends v on `out` unless `done` is ready first. True if sent (v is then moved from).
template <class T>
[[nodiscard]] bool send_or_done(const Receiver<std::monostate>& done, const Sender<T>& out, T& v) {
  Select<2> sel;
  const int sent = sel.send(out, v);
  (void)sel.recv(done);
  return sel.wait() == sent;
}
template <class T>
[[nodiscard]] bool send_or_done(const Receiver<std::monostate>& done, const Sender<T>& out, T&& v) {
  return send_or_done(done, out, v);
}

// Go's orDone: in's values until in is closed or ctx is done.
template <ReceivableChannel C, class T = typename C::value_type>
[[nodiscard]] Receiver<T> or_done(const Context& ctx, const C& input, std::size_t buffer = 0) {
  const Receiver<T> in = input;
  Chan<T> out(buffer);
  spindle::go(SpawnOptions{.name = "or_done"}, [ctx, in, out] {
    const Receiver<std::monostate> done = ctx.done();
    while (auto v = recv_or_done(done, in)) {
      if (!send_or_done(done, Sender<T>(out), *v)) break;
    }
    out.close();
  });
  return out;
}

// Go's tee, to N outputs: every value of `in` goes to all N outputs (copies; T must be
// copyable) before the next is read, in whatever order the consumers take them.
template <std::size_t N, ReceivableChannel C, class T = typename C::value_type>
[[nodiscard]] std::array<Receiver<T>, N> tee(const Context& ctx, const C& input, std::size_t buffer = 0) {
  const Receiver<T> in = input;
  static_assert(N >= 1, "tee<N>: N >= 1");
  static_assert(std::is_copy_constructible_v<T>, "tee: T must be copyable");
  std::array<Chan<T>, N> outs;
  for (auto& o : outs) o = Chan<T>(buffer);
  spindle::go(SpawnOptions{.name = "tee"}, [ctx, in, outs] {
    const Receiver<std::monostate> done = ctx.done();
    bool live = true;
    while (live) {
      std::optional<T> v = recv_or_done(done, in);
      if (!v) break;
      std::array<std::optional<T>, N> copies;
      for (std::size_t i = 0; i < N; ++i) copies[i].emplace(*v);
      std::array<bool, N> sent{};
      for (std::size_t left = N; left > 0 && live; --left) {
        Select<N + 1> sel;
        std::array<std::size_t, N + 1> which{};
        for (std::size_t i = 0; i < N; ++i) {
          if (!sent[i]) which[static_cast<std::size_t>(sel.send(outs[i], *copies[i]))] = i;
        }
        const int done_case = sel.recv(done);
        const int k = sel.wait();
        if (k == done_case) {
          live = false;
        } else {
          sent[which[static_cast<std::size_t>(k)]] = true;
        }
      }
    }
    for (auto& o : outs) o.close();
  });
  std::array<Receiver<T>, N> r;
  for (std::size_t i = 0; i < N; ++i) r[i] = outs[i];
  return r;
}

// Go's bridge: flattens a channel of channels, reading each inner channel to its end before
// taking the next.
template <ReceivableChannel C, class T = typename C::value_type::value_type>
[[nodiscard]] Receiver<T> bridge(const Context& ctx, const C& input, std::size_t buffer = 0) {
  const Receiver<Receiver<T>> streams = input;
  Chan<T> out(buffer);
  spindle::go(SpawnOptions{.name = "bridge"}, [ctx, streams, out] {
    const Receiver<std::monostate> done = ctx.done();
    bool live = true;
    while (live) {
      std::optional<Receiver<T>> stream = recv_or_done(done, streams);
      if (!stream) break;
      while (auto v = recv_or_done(done, *stream)) {
        if (!send_or_done(done, Sender<T>(out), *v)) {
          live = false;
          break;
        }
      }
      if (ctx.err()) break;
    }
    out.close();
  });
  return out;
}

// Fan-in: every value of every input on one output (per input in order), closed when all
// inputs are exhausted (at once for no inputs) or ctx is done.
template <class T>
[[nodiscard]] Receiver<T> merge(const Context& ctx, std::vector<Receiver<T>> ins, std::size_t buffer = 0) {
  Chan<T> out(buffer);
  if (ins.empty()) {
    out.close();
    return out;
  }
  // The last forwarder to finish closes the output (no extra fiber waiting for the others).
  auto remaining = std::make_shared<std::atomic<std::size_t>>(ins.size());
  for (auto& in : ins) {
    spindle::go(SpawnOptions{.name = "merge"}, [ctx, in, out, remaining] {
      const Receiver<std::monostate> done = ctx.done();
      while (auto v = recv_or_done(done, in)) {
        if (!send_or_done(done, Sender<T>(out), *v)) break;
      }
      if (remaining->fetch_sub(1, std::memory_order_acq_rel) == 1) out.close();
    });
  }
  return out;
}

// Fan-out: `workers` fibers read from the same input, apply fn(T) -> R, and each sends to its
// own output (merge them for one stream). workers == 0 throws ConfigError.
template <ReceivableChannel C, class F, class T = typename C::value_type>
[[nodiscard]] auto fan_out(const Context& ctx, const C& input, std::size_t workers, F fn,
                           std::size_t buffer = 0) {
  const Receiver<T> in = input;
  using R = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>;
  if (workers == 0) throw ConfigError("patterns: fan_out: workers must be positive");
  std::vector<Receiver<R>> outs;
  outs.reserve(workers);
  auto shared_fn = std::make_shared<F>(std::move(fn));
  for (std::size_t w = 0; w < workers; ++w) {
    Chan<R> out(buffer);
    spindle::go(SpawnOptions{.name = "fan_out"}, [ctx, in, out, shared_fn] {
      const Receiver<std::monostate> done = ctx.done();
      while (auto v = recv_or_done(done, in)) {
        R r = (*shared_fn)(std::move(*v));
        if (!send_or_done(done, Sender<R>(out), r)) break;
      }
      out.close();
    });
    outs.push_back(out);
  }
  return outs;
}

// A generator: sends next() until it returns nullopt or ctx is done.
template <class F>
[[nodiscard]] auto generator(const Context& ctx, F next, std::size_t buffer = 0) {
  using Opt = std::remove_cvref_t<std::invoke_result_t<F&>>;
  using T = typename Opt::value_type;
  Chan<T> out(buffer);
  spindle::go(SpawnOptions{.name = "generator"}, [ctx, out, next = std::move(next)]() mutable {
    const Receiver<std::monostate> done = ctx.done();
    while (!ctx.err()) {
      std::optional<T> v = next();
      if (!v) break;
      if (!send_or_done(done, Sender<T>(out), *v)) break;
    }
    out.close();
  });
  return Receiver<T>(out);
}

// A generator over the given values, in order.
template <class T>
[[nodiscard]] Receiver<T> from_values(const Context& ctx, std::vector<T> values, std::size_t buffer = 0) {
  return generator(ctx, [values = std::move(values), i = std::size_t{0}]() mutable -> std::optional<T> {
    if (i == values.size()) return std::nullopt;
    return std::move(values[i++]);
  }, buffer);
}

// Go's take: the first n values of `in` (fewer if it closes first), then closed. Reads nothing
// more from `in` than it forwards.
template <ReceivableChannel C, class T = typename C::value_type>
[[nodiscard]] Receiver<T> take(const Context& ctx, const C& input, std::size_t n, std::size_t buffer = 0) {
  const Receiver<T> in = input;
  Chan<T> out(buffer);
  spindle::go(SpawnOptions{.name = "take"}, [ctx, in, out, n] {
    const Receiver<std::monostate> done = ctx.done();
    for (std::size_t i = 0; i < n; ++i) {
      std::optional<T> v = recv_or_done(done, in);
      if (!v || !send_or_done(done, Sender<T>(out), *v)) break;
    }
    out.close();
  });
  return out;
}

}  // namespace spindle::patterns
