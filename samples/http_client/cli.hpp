// http_client's command line: flags and URLs into a Config.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fetcher.hpp"

namespace http_client {

struct Args {
  Config config;
  std::vector<std::string> urls;
  bool print_body = false;
  bool help = false;
  std::string error;  // non-empty: bad usage (print it and the usage, exit 2)
};

// [--timeout D] [--attempt-timeout D] [--retries N] [--backoff D] [--backoff-max D] [--body] URL...
[[nodiscard]] Args parse_args(int argc, const char* const* argv);
[[nodiscard]] std::string usage(std::string_view program);

}  // namespace http_client
