// Walking a command line (flags.hpp).
#include "flags.hpp"

#include <fmt/format.h>

namespace samples {

bool FlagReader::next() {
  if (i_ + 1 >= argc_) return false;
  arg_ = argv_[++i_];
  inline_value_.reset();
  if (const auto eq = arg_.find('='); arg_.starts_with("--") && eq != std::string_view::npos) {
    inline_value_ = arg_.substr(eq + 1);
    arg_ = arg_.substr(0, eq);
  }
  return true;
}

std::optional<std::string_view> FlagReader::value() {
  if (inline_value_) return inline_value_;
  if (i_ + 1 >= argc_) return std::nullopt;
  inline_value_ = argv_[++i_];  // read once: asking again gives the same value
  return inline_value_;
}

std::string FlagReader::missing_value() const { return fmt::format("{} needs a value", arg_); }

std::optional<int> help_or_error(std::string_view program, bool help, std::string_view error,
                                 std::string_view usage) {
  if (help) {
    fmt::print("{}", usage);
    return 0;
  }
  if (!error.empty()) {
    fmt::print(stderr, "{}: {}\n{}", program, error, usage);
    return 2;
  }
  return std::nullopt;
}

}  // namespace samples
