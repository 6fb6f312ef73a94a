// graceful_server's command line: flags into a Config (durations in Go's notation,
// common/duration.hpp).
#pragma once

#include <string>
#include <string_view>

#include "graceful_server.hpp"

namespace graceful_server {

struct Args {
  Config config;
  bool help = false;
  std::string error;  // non-empty: bad flags (print it and the usage, exit 2)
};

// --listen HOST:PORT (or :PORT), --shutdown-timeout D, --drain-delay D, --help.
[[nodiscard]] Args parse_args(int argc, const char* const* argv);
[[nodiscard]] std::string usage(std::string_view program);

}  // namespace graceful_server
