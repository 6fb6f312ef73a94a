// graceful_server: serves /, /slow?ms=N and /healthz until SIGINT/SIGTERM, then drains the
// in-flight requests within --shutdown-timeout. The program is graceful_server.cpp; this file
// parses flags and prints. Exit status: 0 after a complete shutdown, 1 when requests were cut
// off or serving failed, 2 for bad flags.
#include <chrono>
#include <cstdio>
#include <ctime>

#include <fmt/format.h>

#include <spindle/runtime.hpp>

#include "cli.hpp"
#include "graceful_server.hpp"

int main(int argc, char** argv) {
  graceful_server::Args args = graceful_server::parse_args(argc, argv);
  if (args.help) {
    fmt::print("{}", graceful_server::usage(argv[0]));
    return 0;
  }
  if (!args.error.empty()) {
    fmt::print(stderr, "graceful_server: {}\n{}", args.error, graceful_server::usage(argv[0]));
    return 2;
  }
  // Log lines carry the wall-clock time, to the millisecond.
  args.config.log = [](std::string_view line) {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    localtime_r(&t, &tm);
    fmt::print(stderr, "{:02}:{:02}:{:02}.{:03} {}\n", tm.tm_hour, tm.tm_min, tm.tm_sec, ms, line);
  };
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
