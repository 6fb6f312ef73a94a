// patterns::error_category: the messages of patterns::errc.
#include <spindle/patterns/errors.hpp>

namespace spindle::patterns {
namespace {

class Category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "spindle.patterns"; }
  [[nodiscard]] std::string message(int v) const override {
    switch (static_cast<errc>(v)) {
      case errc::circuit_open: return "circuit breaker is open";
      case errc::too_many_requests: return "too many requests";
      case errc::bulkhead_full: return "bulkhead is full";
      case errc::unknown_compartment: return "bulkhead compartment is not configured";
      case errc::pool_closed: return "worker pool is shut down";
      case errc::queue_full: return "worker pool queue is full";
      case errc::exceeds_burst: return "rate: Wait(n) exceeds limiter's burst";
      case errc::would_exceed_deadline: return "rate: Wait(n) would exceed context deadline";
      case errc::limiter_stopped: return "rate: limiter stopped";
      case errc::too_many_restarts: return "supervisor: worker restarted too many times";
      case errc::hook_failed: return "shutdown: hook failed";
      case errc::closed: return "queue is closed";
    }
    return "spindle.patterns: unknown error " + std::to_string(v);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category kCategory;
  return kCategory;
}

}  // namespace spindle::patterns
