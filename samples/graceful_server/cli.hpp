// graceful_server's command line: flags into a Config, durations parsed and printed.
#pragma once

#include <string>
#include <string_view>

#include "graceful_server.hpp"

namespace graceful_server {

// "250ms", "10s", "1.5s", "2m", "0" (a bare number is seconds). Returns false on bad input or
// a negative value.
[[nodiscard]] bool parse_duration(std::string_view s, Duration& out);
// "250ms", "1.5s", "2m" - the shortest exact-enough form for logs.
[[nodiscard]] std::string format_duration(Duration d);

struct Args {
  Config config;
  bool help = false;
  std::string error;  // non-empty: bad flags (print it and the usage, exit 2)
};

// --listen HOST:PORT (or :PORT), --shutdown-timeout D, --drain-delay D, --help.
[[nodiscard]] Args parse_args(int argc, const char* const* argv);
[[nodiscard]] std::string usage(std::string_view program);

}  // namespace graceful_server
