// event_processor: watch a directory and act once per burst of changes to a file.
//
//   event_processor --dir DIR [--quiet-period 200ms] [--exec 'CMD']
//
// The program is processor.cpp; this file parses flags, prints one line per action and stops
// on SIGINT/SIGTERM. Exit status: 0 after Ctrl-C, 1 when the watch fails (the directory went
// away), 2 for bad flags.
#include <signal.h>

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include <spindle/context.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/runtime.hpp>

#include "common/duration.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"
#include "processor.hpp"

namespace {

using event_processor::Config;

std::string usage(std::string_view prog) {
  return fmt::format(
      "usage: {} --dir DIR [--quiet-period D] [--exec CMD]\n"
      "  --dir DIR           directory to watch (its files, not subdirectories)\n"
      "  --quiet-period D    a file's burst ends after D without changes (default 200ms;\n"
      "                      units ns, us, ms, s, m, h; a bare number is seconds)\n"
      "  --exec CMD          per burst, run /bin/sh -c CMD with the file's path as $1\n"
      "                      (default: print the file's size and SHA-256)\n"
      "Names starting with '.' or ending with '~' are ignored. Ctrl-C stops.\n",
      prog);
}

struct Args {
  Config cfg;
  bool help = false;
  std::string error;
};

Args parse_args(int argc, char** argv) {
  Args a;
  samples::FlagReader r(argc, argv);
  while (r.next()) {
    const std::string_view flag = r.arg();
    if (flag == "-h" || flag == "--help") {
      a.help = true;
      continue;
    }
    if (flag != "--dir" && flag != "--quiet-period" && flag != "--exec") {
      a.error = fmt::format("unknown flag {}", flag);
      return a;
    }
    const std::optional<std::string_view> value = r.value();
    if (!value) {
      a.error = r.missing_value();
      return a;
    }
    if (flag == "--dir") {
      a.cfg.dir = std::string(*value);
    } else if (flag == "--exec") {
      a.cfg.exec = std::string(*value);
    } else {
      std::string err;
      const std::optional<spindle::Duration> d = samples::parse_flag_duration(*value, &err);
      if (!d || *d == spindle::Duration::zero()) {
        a.error = fmt::format("--quiet-period: {} (try 200ms, 1s)", d ? "must be more than 0" : err);
        return a;
      }
      a.cfg.quiet_period = *d;
    }
  }
  if (!a.help && a.cfg.dir.empty()) a.error = "--dir is required";
  if (!a.help && a.cfg.exec.find_first_not_of(" \t") == std::string::npos && !a.cfg.exec.empty()) {
    a.error = "--exec: empty command";
  }
  return a;
}

void print_action(const event_processor::ActionResult& r) {
  using samples::format_duration;
  const std::string head = fmt::format("{} {}  ({} event{})", samples::clock_now(), r.file, r.events, r.events == 1 ? "" : "s");
  if (r.err) {
    fmt::print("{}  failed: {}\n", head, r.err.message());
  } else if (r.exec) {
    fmt::print("{}  exec exit {}  in {}\n", head, r.exit_status, format_duration(r.took));
  } else if (!r.exists) {
    fmt::print("{}  removed\n", head);
  } else if (!r.regular) {
    fmt::print("{}  not a regular file\n", head);
  } else {
    fmt::print("{}  {} bytes  sha256 {}  in {}\n", head, r.size, r.sha256, format_duration(r.took));
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  if (auto rc = samples::help_or_error("event_processor", args.help, args.error, usage(argv[0]))) return *rc;
  args.cfg.on_action = print_action;
  return spindle::run([&]() -> int {
    event_processor::Processor proc(args.cfg);
    if (std::error_code err = proc.open()) {
      fmt::print(stderr, "event_processor: cannot watch {}: {}\n", args.cfg.dir, err.message());
      return 1;
    }
    // Ctrl-C (or the processor stopping on its own) ends the run.
    auto [ctx, stop] = spindle::signal::notify_context(spindle::background(), {SIGINT, SIGTERM});
    fmt::print("watching {} (quiet period {}{}); Ctrl-C to stop\n", args.cfg.dir,
               samples::format_duration(args.cfg.quiet_period),
               args.cfg.exec.empty() ? std::string() : fmt::format(", exec '{}'", args.cfg.exec));
    std::fflush(stdout);
    const std::error_code err = proc.run(ctx);
    if (spindle::cause(ctx) == std::errc::interrupted) fmt::print(stderr, "\nevent_processor: stopped by a signal\n");
    stop();
    const event_processor::Stats s = proc.stats();
    fmt::print("stopped: {} events ({} ignored), {} bursts, {} actions, {} pending dropped\n", s.events,
               s.ignored, s.bursts, s.actions, s.dropped);
    if (err) {
      fmt::print(stderr, "event_processor: {}: {}\n", args.cfg.dir, err.message());
      return 1;
    }
    return 0;
  });
}
