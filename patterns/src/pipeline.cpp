// Pipeline: wait, metrics, lifetime (see pipeline.hpp).
//
// Invariants: every stage fiber is in group_ (an ErrGroup under cancelable_'s context), so the
// first failure cancels them all and wait() joins them all; a stage's output is closed by its
// last worker to finish (Stage::remaining reaching zero), exactly once.
#include <spindle/patterns/pipeline.hpp>

#include <cmath>
#include <cstdio>

namespace spindle::patterns {

Pipeline::Pipeline(const Context& parent, const Clock* clock)
    : clock_(clock_or_system(clock)),
      cancelable_(with_cancel(parent)),
      group_(ErrGroup::with_context(cancelable_.ctx)) {}

Pipeline::~Pipeline() {
  cancel();
  if (!waited_) {
    std::exception_ptr error;
    try {
      (void)group_.group.wait();
    } catch (...) {
      // The pipeline is being destroyed without wait(): a stage's exception has nobody to go
      // to. Keep it and report it below (printed, as ErrGroup's destructor does).
      error = std::current_exception();
    }
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "spindle::patterns::Pipeline destroyed without wait(): a stage threw: %s\n", e.what());
      } catch (...) {
        std::fprintf(stderr, "spindle::patterns::Pipeline destroyed without wait(): a stage threw\n");
      }
    }
  }
}

std::error_code Pipeline::wait() {
  if (waited_) return result_;
  std::error_code ec;
  std::exception_ptr error;
  try {
    ec = group_.group.wait();
  } catch (...) {
    error = std::current_exception();
  }
  waited_ = true;
  if (error) std::rethrow_exception(error);
  result_ = ec;
  return ec;
}

std::vector<StageMetrics> Pipeline::metrics() const {
  std::vector<StageMetrics> out;
  std::lock_guard lock(stages_mu_);
  out.reserve(stages_.size());
  for (const auto& st : stages_) {
    StageMetrics m;
    m.name = st->name;
    m.workers = st->workers;
    m.in = st->in.load(std::memory_order_relaxed);
    m.out = st->out.load(std::memory_order_relaxed);
    m.errors = st->errors.load(std::memory_order_relaxed);
    m.skipped = st->skipped.load(std::memory_order_relaxed);
    m.dead_lettered = st->dead.load(std::memory_order_relaxed);
    m.queue_depth = st->depth ? st->depth() : 0;
    m.queue_capacity = st->capacity;
    std::vector<Duration> window;
    {
      std::lock_guard lat_lock(st->lat_mu);
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(st->lat_count, kLatencyWindow));
      window.assign(st->lat.begin(), st->lat.begin() + static_cast<std::ptrdiff_t>(n));
    }
    if (!window.empty()) {
      std::sort(window.begin(), window.end());
      // Nearest rank: the smallest sample with at least p% of samples at or below it.
      auto rank = [&](double p) {
        std::size_t k = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(window.size())));
        if (k == 0) k = 1;
        return window[k - 1];
      };
      m.latency = LatencySummary{rank(50), rank(90), rank(99), window.back(), window.size()};
    }
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace spindle::patterns
