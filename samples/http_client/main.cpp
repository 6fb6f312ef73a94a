// http_client: fetches URLs concurrently with retries, timeouts and request IDs; Ctrl-C cancels.
// The program is fetcher.cpp; this file parses flags and prints. Progress goes to stderr (one
// line per event, each with its request ID), one result line per URL to stdout.
#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include <spindle/runtime.hpp>

#include "cli.hpp"
#include "common/flags.hpp"
#include "common/log.hpp"
#include "fetcher.hpp"

int main(int argc, char** argv) {
  http_client::Args args = http_client::parse_args(argc, argv);
  if (auto rc = samples::help_or_error("http_client", args.help, args.error, http_client::usage(argv[0]))) return *rc;
  args.config.log = samples::log_stderr;
  return spindle::run([&] {
    http_client::Fetcher fetcher(args.config);
    bool interrupted = false;
    const auto results = http_client::fetch_until_signal(fetcher, spindle::background(), args.urls, interrupted);
    bool all_ok = true;
    for (const auto& r : results) {
      all_ok = all_ok && r.ok();
      const std::string outcome = r.status != 0 && (!r.err || r.err == http_client::errc::server_error)
                                      ? fmt::format("{}", r.status)
                                      : fmt::format("error: {}", r.err.message());
      fmt::print("{}  {}  [{}] {} attempt(s), {} ms, {} bytes\n", outcome, r.url, r.request_id, r.attempts,
                 std::chrono::duration_cast<std::chrono::milliseconds>(r.elapsed).count(), r.body.size());
      if (args.print_body && !r.body.empty()) fmt::print("{}{}", r.body, r.body.back() == '\n' ? "" : "\n");
    }
    return interrupted ? 130 : all_ok ? 0 : 1;
  });
}
