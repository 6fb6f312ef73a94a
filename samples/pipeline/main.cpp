// pipeline: fetch -> parse -> transform -> store, concurrently, with backpressure, per-stage
// error policies and metrics, a live progress display, and a clean stop on Ctrl-C.
// This file only turns flags into a pipeline::Config and runs it; see run.hpp and README.md.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <fmt/format.h>

#include <spindle/runtime.hpp>

#include "run.hpp"

namespace {

constexpr std::string_view kUsage = R"(usage: pipeline [flags]

Fetches documents concurrently, parses them (JSON), counts their words, and stores the
documents and a global word index in SQLite. By default it serves a generated corpus itself,
over HTTP on 127.0.0.1, and fetches it from there.

input (default: the generated corpus):
  --docs N              documents to generate (10000)
  --words-per-doc N     words in each document's body (200)
  --vocab N             distinct words of the corpus, Zipf-distributed (5000)
  --seed N              seed of the corpus and of the failure draws (1)
  --urls FILE           fetch the http:// URLs listed in FILE instead, one per line
  --dir DIR             read the *.json files of DIR instead
stages:
  --fetchers N          fetch workers (16)
  --parsers N           parse workers (2)
  --transformers N      transform workers (2)
  --buffer N            capacity of each channel between stages (64)
  --batch N             documents per database transaction (256)
  --db PATH             the SQLite database (default $TMPDIR/spindle-pipeline.db)
  --timeout SECONDS     per HTTP request (10)
failures:
  --fail-fetch P, --fail-parse P, --fail-transform P, --fail-store P
                        make each attempt at an item fail with probability P (0..1)
  --on-error POLICY     skip, retry or abort, for every stage; or per stage:
                        STAGE:POLICY[,STAGE:POLICY...] (default fetch:retry,parse:skip,
                        transform:skip,store:abort)
  --attempts N          retry: attempts in all per item (4)
  --backoff MS          retry: the first delay's cap, doubling up to --backoff-max MS (10, 500)
display and runtime:
  --progress MODE       auto, tty, plain or off (auto: tty when stdout is a terminal)
  --workers N           spindle worker threads (default $SPINDLE_WORKERS, else every core)
  -h, --help            this text

Ctrl-C stops fetching and lets the documents in flight be stored; a second Ctrl-C drops them.
Exit status: 0 done, 130 interrupted, 1 aborted or failed, 2 bad flags.
)";

struct Flags {
  pipeline::Config cfg;
  int workers = 0;
  std::string progress = "auto";
};

struct FlagError {
  std::string message;
};

template <class T>
T number(std::string_view flag, std::string_view v, T min, T max) {
  T n{};
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < min || n > max) {
    throw FlagError{fmt::format("{}: expected a number from {} to {}, got \"{}\"", flag, min, max, v)};
  }
  return n;
}

void set_policies(pipeline::Config& cfg, std::string_view v) {
  if (auto p = pipeline::parse_on_error(v)) {
    for (auto& st : cfg.stages) st.on_error = *p;
    return;
  }
  while (!v.empty()) {
    const std::string_view item = v.substr(0, v.find(','));
    v.remove_prefix(std::min(v.size(), item.size() + 1));
    const auto colon = item.find(':');
    const auto stage = pipeline::parse_stage(item.substr(0, colon));
    const auto policy = colon == std::string_view::npos ? std::nullopt : pipeline::parse_on_error(item.substr(colon + 1));
    if (!stage || !policy) {
      throw FlagError{fmt::format("--on-error: expected skip, retry, abort or STAGE:POLICY,... with STAGE one of "
                                  "fetch, parse, transform, store; got \"{}\"", item)};
    }
    cfg.stages[static_cast<std::size_t>(*stage)].on_error = *policy;
  }
}

// Returns the flags, or nullopt after printing the usage (--help).
std::optional<Flags> parse_flags(int argc, char** argv) {
  Flags f;
  pipeline::Config& c = f.cfg;
  c.db_path = pipeline::default_db_path();
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage.data(), stdout);
      return std::nullopt;
    }
    if (!arg.starts_with("--")) throw FlagError{fmt::format("unexpected argument \"{}\"", arg)};
    std::string_view name = arg;
    std::string_view value;
    if (const auto eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      throw FlagError{fmt::format("{} needs a value", name)};
    }
    constexpr std::uint64_t kBig = 1'000'000'000'000ULL;
    if (name == "--docs") {
      c.corpus.docs = number<std::uint64_t>(name, value, 0, kBig);
    } else if (name == "--words-per-doc") {
      c.corpus.words_per_doc = number<std::uint32_t>(name, value, 1, 1'000'000);
    } else if (name == "--vocab") {
      c.corpus.vocabulary = number<std::uint32_t>(name, value, 1, pipeline::kMaxVocabulary);
    } else if (name == "--seed") {
      c.corpus.seed = number<std::uint64_t>(name, value, 0, UINT64_MAX);
    } else if (name == "--urls") {
      c.urls_file = value;
    } else if (name == "--dir") {
      c.dir = value;
    } else if (name == "--fetchers") {
      c.fetchers = number<std::size_t>(name, value, 1, 100'000);
    } else if (name == "--parsers") {
      c.parsers = number<std::size_t>(name, value, 1, 100'000);
    } else if (name == "--transformers") {
      c.transformers = number<std::size_t>(name, value, 1, 100'000);
    } else if (name == "--buffer") {
      c.buffer = number<std::size_t>(name, value, 0, 1'000'000);
    } else if (name == "--batch") {
      c.batch = number<std::size_t>(name, value, 1, 1'000'000);
    } else if (name == "--db") {
      c.db_path = value;
    } else if (name == "--timeout") {
      c.fetch_timeout = std::chrono::seconds(number<int>(name, value, 1, 3600));
    } else if (name.starts_with("--fail-")) {
      const auto stage = pipeline::parse_stage(name.substr(7));
      if (!stage) throw FlagError{fmt::format("unknown flag {} (see --help)", name)};
      c.stages[static_cast<std::size_t>(*stage)].fail_rate = number<double>(name, value, 0.0, 1.0);
    } else if (name == "--on-error") {
      set_policies(c, value);
    } else if (name == "--attempts") {
      c.attempts = number<int>(name, value, 1, 1000);
    } else if (name == "--backoff") {
      c.backoff = std::chrono::milliseconds(number<int>(name, value, 1, 600'000));
    } else if (name == "--backoff-max") {
      c.backoff_max = std::chrono::milliseconds(number<int>(name, value, 1, 600'000));
    } else if (name == "--progress") {
      if (value != "auto" && value != "tty" && value != "plain" && value != "off") {
        throw FlagError{fmt::format("--progress: expected auto, tty, plain or off, got \"{}\"", value)};
      }
      f.progress = value;
    } else if (name == "--workers") {
      f.workers = number<int>(name, value, 1, 1024);
    } else {
      throw FlagError{fmt::format("unknown flag {} (see --help)", name)};
    }
  }
  if (!c.urls_file.empty() && !c.dir.empty()) throw FlagError{"--urls and --dir exclude each other"};
  if (c.backoff_max < c.backoff) throw FlagError{"--backoff-max must be at least --backoff"};
  const bool tty = f.progress == "tty" || (f.progress == "auto" && ::isatty(STDOUT_FILENO) == 1);
  c.progress = f.progress == "off" ? pipeline::ProgressMode::off
               : tty               ? pipeline::ProgressMode::tty
                                   : pipeline::ProgressMode::plain;
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<Flags> flags;
  try {
    flags = parse_flags(argc, argv);
  } catch (const FlagError& e) {
    fmt::print(stderr, "pipeline: {}\n", e.message);
    return 2;
  }
  if (!flags) return 0;
  spindle::Options opts;
  opts.workers = flags->workers;
  const pipeline::Report report = spindle::run(opts, [&] { return pipeline::run_interruptible(flags->cfg); });
  std::fputs(pipeline::format_summary(report).c_str(), stdout);
  return pipeline::exit_code(report);
}
