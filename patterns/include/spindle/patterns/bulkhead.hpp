// Bulkhead: named compartments with a capacity, so one slow dependency cannot take every fiber
// (or every connection) with it.
//
//   Bulkhead bh;
//   bh.add("payments", 10);
//   bh.add("search", 50);
//   auto ec = bh.execute("payments", [&] { return charge(order); });        // reject when full
//   auto ec2 = bh.execute(ctx, "search", [&] { return query(q); });         // or wait (ctx)
//
// Compartment semantics:
//  * at most `capacity` Permits are held at once; try_acquire() never waits (errc::bulkhead_full
//    when full), acquire(ctx) waits first-come first-served (spindle::Semaphore) until a Permit
//    is free or ctx is done (ctx.err(); nothing held, nothing queued), acquire_for(d) waits up
//    to d on the compartment's clock (spindle::errc::deadline_exceeded when it runs out);
//  * a Permit releases on destruction or release(), exactly once;
//  * metrics() reports capacity, in use, waiting, the peak in use, and how many acquisitions
//    were admitted, rejected (full), timed out and cancelled, all counted exactly.
// Bulkhead maps names to compartments (the seed's map of semaphore channels): execute on an
// unknown name returns errc::unknown_compartment (the seed's "bulkhead %s not configured");
// adding a name twice, or a capacity <= 0, throws ConfigError.
//
// Thread-safety: everything may be called concurrently; compartments are never removed, so a
// Compartment& stays valid for the Bulkhead's lifetime. Lifetime: Permits must not outlive
// their compartment.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <spindle/context.hpp>
#include <spindle/rwmutex.hpp>
#include <spindle/semaphore.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

struct CompartmentMetrics {
  std::string name;
  std::int64_t capacity = 0;
  std::int64_t in_use = 0;       // permits held now
  std::int64_t waiting = 0;      // acquire(ctx)/acquire_for waiting now
  std::int64_t peak_in_use = 0;
  std::uint64_t admitted = 0;    // permits granted
  std::uint64_t rejected = 0;    // try_acquire / execute found it full
  std::uint64_t timed_out = 0;   // waits that ran out of time (deadline)
  std::uint64_t canceled = 0;    // waits whose context was cancelled
};

class Compartment {
 public:
  // Throws ConfigError for capacity <= 0. `clock` (null: system_clock()) times acquire_for.
  Compartment(std::string name, std::int64_t capacity, const Clock* clock = nullptr);
  Compartment(const Compartment&) = delete;
  Compartment& operator=(const Compartment&) = delete;

  class [[nodiscard]] Permit {
   public:
    Permit(Permit&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
    Permit& operator=(Permit&& o) noexcept {
      if (this != &o) {
        release();
        c_ = std::exchange(o.c_, nullptr);
      }
      return *this;
    }
    Permit(const Permit&) = delete;
    Permit& operator=(const Permit&) = delete;
    ~Permit() { release(); }
    // Gives the slot back (once; later calls do nothing).
    void release() noexcept {
      if (Compartment* c = std::exchange(c_, nullptr)) c->release_one();
    }
    [[nodiscard]] bool held() const noexcept { return c_ != nullptr; }

   private:
    friend class Compartment;
    explicit Permit(Compartment* c) noexcept : c_(c) {}
    Compartment* c_;
  };

  // A permit now, or errc::bulkhead_full. Never blocks.
  [[nodiscard]] Result<Permit> try_acquire();
  // A permit, waiting FIFO until one is free; ctx.err() if ctx is done first (at once if it
  // already is).
  [[nodiscard]] Result<Permit> acquire(const Context& ctx);
  // A permit, waiting at most d on the compartment's clock: spindle::errc::deadline_exceeded
  // when d runs out.
  [[nodiscard]] Result<Permit> acquire_for(Duration d);

  // Runs fn() holding a permit, or returns errc::bulkhead_full at once. fn returns void,
  // std::error_code, Result<V> or V (execute returns std::error_code or Result<V>); its
  // exceptions propagate (the permit is released).
  template <class F>
  auto execute(F&& fn) {
    using Out = decltype(detail::invoke_outcome(fn));
    Result<Permit> p = try_acquire();
    if (!p) return Out(p.error());
    return Out(detail::invoke_outcome(fn));
  }
  // The same, waiting for a permit until ctx is done.
  template <class F>
  auto execute(const Context& ctx, F&& fn) {
    using Out = decltype(detail::invoke_outcome(fn));
    Result<Permit> p = acquire(ctx);
    if (!p) return Out(p.error());
    return Out(detail::invoke_outcome(fn));
  }

  [[nodiscard]] CompartmentMetrics metrics() const;
  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] std::int64_t capacity() const noexcept { return capacity_; }

 private:
  Permit grant() noexcept;
  void release_one() noexcept;

  const std::string name_;
  const std::int64_t capacity_;
  const Clock& clock_;
  spindle::Semaphore sem_;
  std::atomic<std::int64_t> in_use_{0};
  std::atomic<std::int64_t> waiting_{0};
  std::atomic<std::int64_t> peak_{0};
  std::atomic<std::uint64_t> admitted_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<std::uint64_t> timed_out_{0};
  std::atomic<std::uint64_t> canceled_{0};
};

class Bulkhead {
 public:
  // `clock` (null: system_clock()) is given to every compartment.
  explicit Bulkhead(const Clock* clock = nullptr) : clock_(clock) {}
  Bulkhead(const Bulkhead&) = delete;
  Bulkhead& operator=(const Bulkhead&) = delete;

  // Adds a compartment. Throws ConfigError if the name exists or capacity <= 0.
  Compartment& add(std::string name, std::int64_t capacity);
  // The compartment called `name`, or nullptr.
  [[nodiscard]] Compartment* find(std::string_view name) const;

  // Compartment::execute on `name` (reject when full); errc::unknown_compartment if none.
  template <class F>
  auto execute(std::string_view name, F&& fn) {
    using Out = decltype(detail::invoke_outcome(fn));
    Compartment* c = find(name);
    if (c == nullptr) return Out(make_error_code(errc::unknown_compartment));
    return c->execute(std::forward<F>(fn));
  }
  // Compartment::execute(ctx, fn) on `name` (wait until ctx is done); unknown_compartment if
  // none.
  template <class F>
  auto execute(const Context& ctx, std::string_view name, F&& fn) {
    using Out = decltype(detail::invoke_outcome(fn));
    Compartment* c = find(name);
    if (c == nullptr) return Out(make_error_code(errc::unknown_compartment));
    return c->execute(ctx, std::forward<F>(fn));
  }

  // Every compartment's metrics, by name.
  [[nodiscard]] std::vector<CompartmentMetrics> metrics() const;

 private:
  const Clock* clock_;
  mutable spindle::RWMutex mu_;
  std::map<std::string, std::unique_ptr<Compartment>, std::less<>> compartments_;
};

}  // namespace spindle::patterns
