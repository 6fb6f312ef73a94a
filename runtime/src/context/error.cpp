// The spindle error category (spindle/error.hpp): Go's context error messages, and equivalence
// with the portable std::errc conditions so generic code can test for a timeout.
#include <spindle/error.hpp>

#include <string>

namespace spindle {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "spindle"; }

  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::canceled: return "context canceled";
      case errc::deadline_exceeded: return "context deadline exceeded";
      case errc::exception: return "a fiber exited with an exception";
    }
    return "spindle error " + std::to_string(code);
  }

  // Go: DeadlineExceeded.Timeout() == true. Let `ec == std::errc::timed_out` hold.
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<errc>(code)) {
      case errc::canceled: return std::errc::operation_canceled;
      case errc::deadline_exceeded: return std::errc::timed_out;
      case errc::exception: break;
    }
    return {code, *this};
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace spindle
