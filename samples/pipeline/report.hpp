// What a run reports: per-stage metrics while it runs and at the end, and its outcome.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include <spindle/clock.hpp>
#include <spindle/patterns/pipeline.hpp>

#include "store.hpp"

namespace pipeline {

struct StageReport {
  std::string name;
  std::string policy;              // skip / retry / abort ("" for the source)
  std::size_t workers = 0;
  std::uint64_t in = 0;            // items taken from the input channel
  std::uint64_t out = 0;           // items passed on (the store: items added to a batch)
  std::uint64_t errors = 0;        // items that failed for good (after retries; items in flight
                                   // dropped by a cancellation are not errors)
  std::uint64_t skipped = 0;       // of those, dropped by skip or by retry giving up
  std::uint64_t retries = 0;       // extra attempts made by the retry policy
  std::size_t queue_depth = 0;     // items waiting in the input channel
  std::size_t queue_capacity = 0;
  spindle::patterns::LatencySummary latency;  // per item, over the last 1024 items
  std::string first_error;         // e.g. "doc 17 (http://...): injected failure"
};

enum class Outcome : std::uint8_t {
  completed,    // every input item went through (some may have been skipped)
  interrupted,  // stopped from outside (Ctrl-C, SIGTERM, the caller's context)
  aborted,      // a stage with the abort policy failed, or the database refused a commit
  failed,       // could not start (origin, database, input file)
};
[[nodiscard]] const char* to_string(Outcome o) noexcept;

struct Report {
  Outcome outcome = Outcome::completed;
  std::error_code error;            // aborted/failed: why
  std::string error_detail;         // aborted/failed: which stage, which item, what
  std::vector<StageReport> stages;  // source, fetch, parse, transform, store
  StoreTotals stored;               // committed to the database
  std::uint64_t distinct_words = 0; // rows of the words table at the end
  std::uint64_t expected = 0;       // documents in the input (0: not known in advance)
  std::string input;                // what was read: the origin's URL, a list, a directory
  std::string db_path;
  spindle::Duration elapsed{};
  bool rolled_back = false;         // an open batch was dropped (aborted runs)
  std::uint64_t rolled_back_docs = 0;
};

// The process exit status for a report: 0 completed, 130 interrupted, 1 otherwise.
[[nodiscard]] int exit_code(const Report& r) noexcept;

// The end-of-run summary: a headline, the per-stage table, errors, and the database path.
[[nodiscard]] std::string format_summary(const Report& r);

// "1,234,567".
[[nodiscard]] std::string with_commas(std::uint64_t n);
// "850µs", "12.3ms", "1.20s" ("-" for zero samples).
[[nodiscard]] std::string format_latency(spindle::Duration d);

}  // namespace pipeline
