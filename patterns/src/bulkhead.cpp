// Bulkhead and Compartment (see bulkhead.hpp).
//
// Invariants: sem_ holds one token per Permit alive; in_use_ equals the Permits alive (changed
// after the semaphore grants and before it is released); waiting_ counts callers inside a
// blocking acquire; peak_ only grows.
#include <spindle/patterns/bulkhead.hpp>

#include <mutex>
#include <shared_mutex>

namespace spindle::patterns {

namespace {
std::int64_t checked_capacity(std::int64_t c, const std::string& name) {
  if (c <= 0) {
    throw ConfigError("patterns: bulkhead compartment \"" + name + "\": capacity must be positive, got " +
                      std::to_string(c));
  }
  return c;
}
}  // namespace

Compartment::Compartment(std::string name, std::int64_t capacity, const Clock* clock)
    : name_(std::move(name)),
      capacity_(checked_capacity(capacity, name_)),
      clock_(clock_or_system(clock)),
      sem_(capacity_) {}

Compartment::Permit Compartment::grant() noexcept {
  const std::int64_t now = in_use_.fetch_add(1, std::memory_order_relaxed) + 1;
  std::int64_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  admitted_.fetch_add(1, std::memory_order_relaxed);
  return Permit(this);
}

void Compartment::release_one() noexcept {
  in_use_.fetch_sub(1, std::memory_order_relaxed);
  sem_.release(1);  // cannot over-release: one token per Permit
}

Result<Compartment::Permit> Compartment::try_acquire() {
  if (!sem_.try_acquire(1)) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    return make_error_code(errc::bulkhead_full);
  }
  return grant();
}

Result<Compartment::Permit> Compartment::acquire(const Context& ctx) {
  if (std::error_code ec = ctx.err()) {
    (timed_out(ctx) ? timed_out_ : canceled_).fetch_add(1, std::memory_order_relaxed);
    return ec;
  }
  if (sem_.try_acquire(1)) return grant();
  waiting_.fetch_add(1, std::memory_order_relaxed);
  const std::error_code ec = sem_.acquire(ctx, 1);
  waiting_.fetch_sub(1, std::memory_order_relaxed);
  if (ec) {
    (timed_out(ctx) ? timed_out_ : canceled_).fetch_add(1, std::memory_order_relaxed);
    return ec;
  }
  return grant();
}

Result<Compartment::Permit> Compartment::acquire_for(Duration d) {
  ClockContext tc = timeout_context(background(), d, clock_);
  Result<Permit> p = acquire(tc.ctx);
  if (!p && timed_out(tc.ctx)) return make_error_code(spindle::errc::deadline_exceeded);
  return p;
}

CompartmentMetrics Compartment::metrics() const {
  return CompartmentMetrics{name_,
                            capacity_,
                            in_use_.load(std::memory_order_relaxed),
                            waiting_.load(std::memory_order_relaxed),
                            peak_.load(std::memory_order_relaxed),
                            admitted_.load(std::memory_order_relaxed),
                            rejected_.load(std::memory_order_relaxed),
                            timed_out_.load(std::memory_order_relaxed),
                            canceled_.load(std::memory_order_relaxed)};
}

Compartment& Bulkhead::add(std::string name, std::int64_t capacity) {
  auto c = std::make_unique<Compartment>(name, capacity, clock_);
  std::lock_guard lock(mu_);
  auto [it, inserted] = compartments_.try_emplace(std::move(name), nullptr);
  if (!inserted) {
    throw ConfigError("patterns: bulkhead compartment \"" + it->first + "\" is already configured");
  }
  it->second = std::move(c);
  return *it->second;
}

Compartment* Bulkhead::find(std::string_view name) const {
  std::shared_lock lock(mu_);
  auto it = compartments_.find(name);
  return it == compartments_.end() ? nullptr : it->second.get();
}

std::vector<CompartmentMetrics> Bulkhead::metrics() const {
  std::vector<CompartmentMetrics> out;
  std::shared_lock lock(mu_);
  out.reserve(compartments_.size());
  for (const auto& [name, c] : compartments_) out.push_back(c->metrics());
  return out;
}

}  // namespace spindle::patterns
