// search_aggregator: fan a query out to several search backends, keep what arrives by the
// deadline, merge and rank it.
//
//   search_aggregator [--deadline D] [--concurrency N] [--top K]
//                     [--backend NAME=URL]... [--demo SPEC] QUERY...
//
// Without --backend, demo backends run in-process on loopback (--demo, or a default mix of
// fast, slow and failing ones). The program is aggregator.cpp and demo.cpp; this file parses
// flags and prints. Exit status: 0 if at least one backend answered, 1 if none did (or a demo
// backend could not start), 2 for bad flags. Ctrl-C cancels the search in flight.
#include <signal.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <spindle/context.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/runtime.hpp>

#include "aggregator.hpp"
#include "common/duration.hpp"
#include "common/flags.hpp"
#include "demo.hpp"

namespace {

using namespace search_aggregator;
using samples::format_duration;

constexpr std::string_view kDefaultDemo =
    "alpha:5ms,bravo:30ms,charlie:60ms,delta:400ms,echo:20ms:fail,foxtrot:2s";

std::string usage(std::string_view prog) {
  return fmt::format(
      "usage: {} [flags] QUERY...\n"
      "  --deadline D        answers arriving later are dropped, their requests cancelled\n"
      "                      (default 150ms; units ns, us, ms, s, m, h; 0: none)\n"
      "  --concurrency N     requests in flight at once (default 4)\n"
      "  --top K             merged hits to print (default 10)\n"
      "  --backend NAME=URL  a real backend: GET URL?q=QUERY answering\n"
      "                      {{\"results\":[{{\"title\":..,\"url\":..}}, ...]}} (repeatable)\n"
      "  --demo SPEC         in-process demo backends, e.g. 'a:10ms,b:1s,c:fail,d:garbage'\n"
      "                      (default when no --backend: '{}')\n",
      prog, kDefaultDemo);
}

struct Args {
  Options opts;
  std::vector<Backend> backends;
  std::vector<DemoSpec> demo;
  std::string query;
  bool help = false;
  std::string error;
};

Args parse_args(int argc, char** argv) {
  Args a;
  a.opts.deadline = std::chrono::milliseconds(150);
  std::string demo_spec;
  samples::FlagReader r(argc, argv);
  while (r.next()) {
    const std::string_view flag = r.arg();
    if (flag == "-h" || flag == "--help") {
      a.help = true;
      continue;
    }
    if (!flag.starts_with("--")) {
      if (!a.query.empty()) a.query += ' ';
      a.query += flag;
      continue;
    }
    const std::optional<std::string_view> given = r.value();
    if (!given) {
      a.error = r.missing_value();
      return a;
    }
    const std::string_view value = *given;
    if (flag == "--deadline") {
      std::string err;
      const std::optional<Duration> d = samples::parse_flag_duration(value, &err);
      if (!d) {
        a.error = fmt::format("--deadline: {} (try 150ms, 1s)", err);
        return a;
      }
      a.opts.deadline = *d;
    } else if (flag == "--concurrency" || flag == "--top") {
      int n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size() || n <= 0) {
        a.error = fmt::format("{}: expected a positive integer, got '{}'", flag, value);
        return a;
      }
      if (flag == "--concurrency") a.opts.max_concurrency = n;
      else a.opts.top_k = static_cast<std::size_t>(n);
    } else if (flag == "--backend") {
      const auto eq = value.find('=');
      if (eq == std::string_view::npos || eq == 0 || !value.substr(eq + 1).starts_with("http://")) {
        a.error = fmt::format("--backend: expected NAME=http://host:port/path, got '{}'", value);
        return a;
      }
      a.backends.push_back({std::string(value.substr(0, eq)), std::string(value.substr(eq + 1))});
    } else if (flag == "--demo") {
      demo_spec = std::string(value);
    } else {
      a.error = fmt::format("unknown flag {}", flag);
      return a;
    }
  }
  if (a.help) return a;
  if (a.query.empty()) {
    a.error = "no query";
    return a;
  }
  if (a.backends.empty() && demo_spec.empty()) demo_spec = kDefaultDemo;
  if (!demo_spec.empty() && !parse_demo_specs(demo_spec, a.demo, a.error)) return a;
  return a;
}

void print_result(const SearchResult& r, const Options& opts) {
  fmt::print("\n {:>2}  {:<7} {:<34} {:<22} {}\n", "#", "score", "url", "title", "from");
  for (std::size_t i = 0; i < r.hits.size(); ++i) {
    const Hit& h = r.hits[i];
    std::string from;
    for (const auto& b : h.backends) from += (from.empty() ? "" : ",") + b;
    fmt::print(" {:>2}  {:<7.4f} {:<34} {:<22} {}\n", i + 1, h.score, h.url, h.title, from);
  }
  if (r.hits.empty()) fmt::print("  (no results)\n");
  fmt::print("\n {:<10} {:<10} {:>6} {:>5} {:>9}  {}\n", "backend", "outcome", "status", "hits", "took", "detail");
  for (const BackendReport& b : r.backends) {
    fmt::print(" {:<10} {:<10} {:>6} {:>5} {:>9}  {}\n", b.name, to_string(b.outcome),
               b.status != 0 ? std::to_string(b.status) : "-",
               b.outcome == Outcome::answered ? std::to_string(b.hits) : "-",
               b.outcome == Outcome::skipped ? "-" : format_duration(b.took), b.detail);
  }
  fmt::print("\n{} answered, {} failed, {} timed out, {} skipped, {} canceled in {} (deadline {}, max {} in flight of {})\n",
             r.count(Outcome::answered), r.count(Outcome::failed), r.count(Outcome::timed_out),
             r.count(Outcome::skipped), r.count(Outcome::canceled), format_duration(r.took),
             opts.deadline > Duration::zero() ? format_duration(opts.deadline) : "none", r.max_in_flight,
             opts.max_concurrency);
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse_args(argc, argv);
  if (auto rc = samples::help_or_error("search_aggregator", args.help, args.error, usage(argv[0]))) return *rc;
  return spindle::run([&]() -> int {
    DemoBackends demo;
    std::vector<Backend> backends = args.backends;
    if (!args.demo.empty()) {
      if (std::error_code err = demo.start(args.demo)) {
        fmt::print(stderr, "search_aggregator: demo backends: {}\n", err.message());
        return 1;
      }
      for (Backend& b : demo.backends()) backends.push_back(std::move(b));
      std::string names;
      for (const DemoSpec& s : args.demo) {
        names += fmt::format("{}{} ({}{})", names.empty() ? "" : ", ", s.name, format_duration(s.latency),
                             s.mode == DemoMode::fail ? ", fails" : s.mode == DemoMode::garbage ? ", garbage" : "");
      }
      fmt::print("demo backends on 127.0.0.1: {}\n", names);
    }
    Aggregator agg(backends, args.opts);

    // Ctrl-C cancels the search.
    auto [ctx, stop] = spindle::signal::notify_context(spindle::background(), {SIGINT, SIGTERM});
    fmt::print("query \"{}\" to {} backends\n", args.query, backends.size());
    const SearchResult r = agg.search(ctx, args.query);
    if (spindle::cause(ctx) == std::errc::interrupted) fmt::print(stderr, "search_aggregator: interrupted\n");
    stop();
    print_result(r, args.opts);
    if (!args.demo.empty()) {
      demo.stop();  // waits for the stragglers' handlers, which end when their client goes
      fmt::print("demo backends: {} requests, {} completed, {} saw their client go away\n", demo.requests(),
                 demo.completed(), demo.cancelled());
    }
    return r.count(Outcome::answered) > 0 ? 0 : 1;
  });
}
