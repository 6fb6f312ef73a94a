// Pipeline: stages connected by bounded channels, each with its own concurrency, metrics and
// error policy, cancelled as one.
//
//   Pipeline p(ctx);
//   auto lines  = p.source<std::string>("read", [&](const Context& c, auto emit) { ... emit(line) ... });
//   auto parsed = p.stage("parse", lines, {.workers = 4, .buffer = 64, .on_error = ErrorPolicy::skip},
//                         [](const Context&, std::string s) -> Result<Record> { return parse(s); });
//   p.sink("store", parsed, {.workers = 2}, [&](const Context& c, Record r) { return db.put(c, r); });
//   if (auto ec = p.wait()) ...;                    // the first failure, or {} when all done
//   for (const StageMetrics& m : p.metrics()) log(m);
//
// Semantics (Go's "pipelines and cancellation" blog post, made production-shaped):
//  * every stage reads its input channel with `workers` fibers, calls fn(ctx, item) (or
//    fn(item)), and sends results to its output channel of capacity `buffer`: a full output
//    blocks the stage (backpressure), so at most workers + buffer items sit in each stage;
//    with workers > 1, output order is not input order;
//  * a stage's output is closed when all its workers have finished (input closed and drained,
//    or the pipeline cancelled); the next stage then ends the same way;
//  * errors (fn returning an error) follow the stage's policy: fail (default) cancels the whole
//    pipeline and wait() returns that first error; skip drops the item and counts it;
//    dead_letter sends DeadLetter{item, error, stage} to the channel given with the stage
//    (dropping nothing: the send waits, under backpressure like any other, until the pipeline
//    is cancelled). An exception from fn always fails the pipeline and is rethrown by wait();
//  * cancel() (or the parent context, or a fail) stops every stage: fibers blocked on a send
//    or a receive are released, every output is closed, and wait() returns once every fiber
//    has ended (canceled, or the failure). The destructor cancels and waits;
//  * metrics(), per stage in creation order: items in, out, errors, skipped, dead-lettered,
//    the input channel's current depth and capacity, and latency percentiles (p50/p90/p99 and
//    max, nearest-rank) of fn over its last 1024 calls, measured on the pipeline's clock.
// Stage functions run concurrently with each other (and with themselves when workers > 1).
// Bad options (workers == 0, dead_letter without a channel or with move-only items) throw
// ConfigError.
//
// Thread-safety: building stages and metrics() may be called from any fiber; stages must be
// added before wait(). Memory ordering: an item's processing in one stage happens-before its
// processing in the next (channel send/receive).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/errgroup.hpp>
#include <spindle/mutex.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/combinators.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

enum class ErrorPolicy : std::uint8_t { fail, skip, dead_letter };

struct StageOptions {
  std::size_t workers = 1;                 // fibers running fn (> 0)
  std::size_t buffer = 0;                  // capacity of the stage's output channel
  ErrorPolicy on_error = ErrorPolicy::fail;
};

// What a dead_letter stage sends for an item whose fn failed.
template <class T>
struct DeadLetter {
  T item;
  std::error_code error;
  std::string stage;
};

struct LatencySummary {
  Duration p50{}, p90{}, p99{}, max{};
  std::size_t samples = 0;  // in the window (at most 1024)
};

struct StageMetrics {
  std::string name;
  std::size_t workers = 0;
  std::uint64_t in = 0;             // items taken from the input
  std::uint64_t out = 0;            // items sent to the output (a sink: items consumed OK)
  std::uint64_t errors = 0;         // fn returned an error (any policy)
  std::uint64_t skipped = 0;        // errors dropped by the skip policy
  std::uint64_t dead_lettered = 0;  // errors sent to the dead-letter channel
  std::size_t queue_depth = 0;      // items waiting in the input channel now
  std::size_t queue_capacity = 0;   // the input channel's capacity
  LatencySummary latency;
};

// What a source's generator calls to send an item: false once the pipeline is cancelled (stop
// then).
template <class T>
class Emit {
 public:
  Emit(Sender<T> out, Receiver<std::monostate> done, std::atomic<std::uint64_t>* count) noexcept
      : out_(std::move(out)), done_(std::move(done)), count_(count) {}
  bool operator()(T v) {
    if (!send_or_done(done_, out_, v)) return false;
    count_->fetch_add(1, std::memory_order_relaxed);
    return true;
  }

 private:
  Sender<T> out_;
  Receiver<std::monostate> done_;
  std::atomic<std::uint64_t>* count_;
};

class Pipeline {
 public:
  // Stages run under a child of `parent`; latencies are measured on `clock` (null: system).
  explicit Pipeline(const Context& parent, const Clock* clock = nullptr);
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline();

  // A source: gen(ctx, emit) runs in one fiber and calls emit(item) for each item (emit returns
  // false once cancelled: stop then). The output closes when gen returns. gen returns void or
  // std::error_code (an error fails the pipeline).
  template <class T, class G>
  [[nodiscard]] Receiver<T> source(std::string name, G gen, std::size_t buffer = 0) {
    Stage& st = add_stage(std::move(name), 1, Receiver<std::monostate>{});
    Chan<T> out(buffer);
    group_.group.go([this, &st, out, gen = std::move(gen)]() mutable -> std::error_code {
      Emit<T> emit(out, group_.ctx.done(), &st.out);
      std::error_code ec = detail::invoke_outcome(gen, std::as_const(group_.ctx), emit);
      out.close();
      if (ec) ++st.errors;
      return ec ? ec : group_.ctx.err();
    });
    return out;
  }
  // A source over the given items, in order.
  template <class T>
  [[nodiscard]] Receiver<T> from(std::string name, std::vector<T> items, std::size_t buffer = 0) {
    return source<T>(std::move(name), [items = std::move(items)](const Context&, Emit<T>& emit) mutable {
      for (T& v : items) {
        if (!emit(std::move(v))) return;
      }
    }, buffer);
  }

  // A transform stage (see the file comment); returns its output.
  template <ReceivableChannel C, class F, class A = typename C::value_type>
  [[nodiscard]] auto stage(std::string name, const C& in, StageOptions opts, F fn,
                           Sender<DeadLetter<A>> dead_letters = {}) {
    using Out = decltype(call(fn, std::declval<const Context&>(), std::declval<A&&>()));
    static_assert(!std::is_same_v<Out, std::error_code>,
                  "Pipeline::stage: fn must produce a value (use sink() for a final stage)");
    using B = typename Out::value_type;
    check<A>(opts, dead_letters.is_nil(), name);
    Chan<B> out(opts.buffer);
    run_workers<A>(std::move(name), Receiver<A>(in), opts, std::move(fn), std::move(dead_letters),
                   [out](B&& v, const Receiver<std::monostate>& done) { return send_or_done(done, Sender<B>(out), v); },
                   [out] { out.close(); });
    return Receiver<B>(out);
  }

  // A final stage: fn(ctx, item) returns void or std::error_code.
  template <ReceivableChannel C, class F, class A = typename C::value_type>
  void sink(std::string name, const C& in, StageOptions opts, F fn, Sender<DeadLetter<A>> dead_letters = {}) {
    using Out = decltype(call(fn, std::declval<const Context&>(), std::declval<A&&>()));
    static_assert(std::is_same_v<Out, std::error_code>, "Pipeline::sink: fn returns void or std::error_code");
    check<A>(opts, dead_letters.is_nil(), name);
    run_workers<A>(std::move(name), Receiver<A>(in), opts, std::move(fn), std::move(dead_letters),
                   nullptr, nullptr);
  }

  // Stops every stage (see the file comment). Never blocks; idempotent.
  void cancel() noexcept { cancelable_.cancel(); }
  // Parks until every stage has ended; returns the first failure (rethrows an exception), or
  // canceled after cancel()/the parent's cancellation, or {} when every input was drained.
  [[nodiscard]] std::error_code wait();
  [[nodiscard]] std::vector<StageMetrics> metrics() const;
  // The context stages run under.
  [[nodiscard]] const Context& context() const noexcept { return group_.ctx; }

  static constexpr std::size_t kLatencyWindow = 1024;

 private:
  struct Stage {
    std::string name;
    std::size_t workers = 0;
    std::function<std::size_t()> depth;        // the input channel's len()
    std::size_t capacity = 0;
    std::atomic<std::uint64_t> in{0}, out{0}, errors{0}, skipped{0}, dead{0};
    std::atomic<std::size_t> remaining{0};     // workers still running (the last closes out)
    mutable spindle::Mutex lat_mu;
    std::array<Duration, kLatencyWindow> lat{};
    std::uint64_t lat_count = 0;
    void record(Duration d) {
      std::lock_guard lock(lat_mu);
      lat[lat_count % kLatencyWindow] = d;
      ++lat_count;
    }
  };

  template <class F, class A>
  static auto call(F& fn, const Context& ctx, A&& a) {
    if constexpr (std::is_invocable_v<F&, const Context&, A&&>) {
      return detail::invoke_outcome(fn, ctx, std::forward<A>(a));
    } else {
      return detail::invoke_outcome(fn, std::forward<A>(a));
    }
  }

  template <class A>
  static void check(const StageOptions& o, bool no_dlq, const std::string& name) {
    if (o.workers == 0) throw ConfigError("patterns: Pipeline stage \"" + name + "\": workers must be positive");
    if (o.on_error == ErrorPolicy::dead_letter && no_dlq) {
      throw ConfigError("patterns: Pipeline stage \"" + name + "\": dead_letter policy without a channel");
    }
    if (o.on_error == ErrorPolicy::dead_letter && !std::is_copy_constructible_v<A>) {
      throw ConfigError("patterns: Pipeline stage \"" + name + "\": dead_letter needs copyable items");
    }
  }

  template <class A>
  Stage& add_stage(std::string name, std::size_t workers, const Receiver<A>& in) {
    auto st = std::make_unique<Stage>();
    st->name = std::move(name);
    st->workers = workers;
    st->remaining.store(workers, std::memory_order_relaxed);
    if constexpr (!std::is_same_v<A, std::monostate>) {
      st->depth = [in] { return in.len(); };
      st->capacity = in.cap();
    }
    std::lock_guard lock(stages_mu_);
    stages_.push_back(std::move(st));
    return *stages_.back();
  }

  // Starts a stage's workers. `emit(value, done)` sends a result (false: cancelled) and `close`
  // closes the output; both null for a sink.
  template <class A, class F, class EmitFn, class CloseFn>
  void run_workers(std::string name, Receiver<A> in, StageOptions opts, F fn, Sender<DeadLetter<A>> dlq,
                   EmitFn emit, CloseFn close) {
    Stage& st = add_stage(std::move(name), opts.workers, in);
    auto shared_fn = std::make_shared<F>(std::move(fn));
    for (std::size_t w = 0; w < opts.workers; ++w) {
      group_.group.go([this, &st, in, opts, shared_fn, dlq, emit, close]() -> std::error_code {
        const Context& ctx = group_.ctx;
        const Receiver<std::monostate> done = ctx.done();
        std::error_code result;
        while (!result) {
          std::optional<A> item = recv_or_done(done, in);
          if (!item) break;
          st.in.fetch_add(1, std::memory_order_relaxed);
          // A dead letter needs the item after fn has consumed it: keep a copy only then.
          std::optional<A> keep;
          if constexpr (std::is_copy_constructible_v<A>) {
            if (opts.on_error == ErrorPolicy::dead_letter) keep.emplace(*item);
          }
          const TimePoint t0 = clock_.now();
          auto out = call(*shared_fn, ctx, std::move(*item));
          st.record(clock_.now() - t0);
          if (const std::error_code ec = detail::outcome_error(out)) {
            st.errors.fetch_add(1, std::memory_order_relaxed);
            switch (opts.on_error) {
              case ErrorPolicy::fail:
                result = ec;
                break;
              case ErrorPolicy::skip:
                st.skipped.fetch_add(1, std::memory_order_relaxed);
                break;
              case ErrorPolicy::dead_letter: {
                if constexpr (std::is_copy_constructible_v<A>) {  // else rejected by check()
                  DeadLetter<A> dl{std::move(*keep), ec, st.name};
                  if (!send_or_done(done, dlq, dl)) {
                    result = ctx.err();
                  } else {
                    st.dead.fetch_add(1, std::memory_order_relaxed);
                  }
                }
                break;
              }
            }
            continue;
          }
          if constexpr (!std::is_same_v<EmitFn, std::nullptr_t>) {
            if (!emit(std::move(*out), done)) {
              result = ctx.err();
              break;
            }
          }
          st.out.fetch_add(1, std::memory_order_relaxed);
        }
        if (!result && ctx.err()) result = ctx.err();
        if (st.remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) {
          if constexpr (!std::is_same_v<CloseFn, std::nullptr_t>) close();
        }
        return result;
      });
    }
  }

  const Clock& clock_;
  CancelableContext cancelable_;
  ErrGroupWithContext group_;
  mutable spindle::Mutex stages_mu_;
  std::vector<std::unique_ptr<Stage>> stages_;
  bool waited_ = false;
  std::error_code result_;
};

}  // namespace spindle::patterns
