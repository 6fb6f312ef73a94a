// graceful_server: serves /, /slow?ms=N and /healthz until SIGINT/SIGTERM, then drains the
// in-flight requests within --shutdown-timeout. The program is graceful_server.cpp; this file
// parses flags and prints. Exit status: 0 after a complete shutdown, 1 when requests were cut
// off or serving failed, 2 for bad flags.
#include <cstdio>

#include <fmt/format.h>

#include <spindle/runtime.hpp>

#include "cli.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"
#include "graceful_server.hpp"

int main(int argc, char** argv) {
  graceful_server::Args args = graceful_server::parse_args(argc, argv);
  if (auto rc = samples::help_or_error("graceful_server", args.help, args.error, graceful_server::usage(argv[0]))) return *rc;
  // Log lines carry the wall-clock time, to the millisecond.
  args.config.log = samples::log_stderr;
  return spindle::run([&] {
    graceful_server::App app(args.config);
    if (std::error_code err = app.listen()) {
      fmt::print(stderr, "graceful_server: listen on {}:{}: {}\n", args.config.host, args.config.port, err.message());
      return 1;
    }
    const graceful_server::Summary s = app.run();
    return s.serve_error || s.cut_off > 0 ? 1 : 0;
  });
}
