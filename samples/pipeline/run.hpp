// The pipeline program minus its flags: fetch -> parse -> transform -> store, run once.
//
//   source ─▶ fetch ×F ─▶ parse ×P ─▶ transform ×T ─▶ store ×1 ─▶ SQLite
//          chan(B)     chan(B)     chan(B)         chan(B)
//
// Built on spindle::patterns::Pipeline: each arrow is a bounded channel of capacity B (a full
// channel blocks the stage before it: backpressure, so memory is bounded by the stage widths
// and B, never by the input size), each stage runs its own number of worker fibers, and the
// pipeline's context cancels every stage at once. The source emits Work items lazily (the
// generated corpus from an index, a URL list or a directory a chunk at a time).
//
//   fetch      GET the document (spindle::http::Client, pooled keep-alive connections) or read
//              the file (spindle::blocking)
//   parse      nlohmann::json
//   transform  word counts of the document
//   store      one writer: documents are added to a batch; a full batch is committed as one
//              transaction (Store, on spindle::blocking); the last partial batch after the end
//
// Errors follow each stage's policy (faults.hpp). Stopping:
//  * `stop` done: the source stops emitting; items already emitted drain through every stage
//    and are stored; the open batch is committed. Outcome interrupted.
//  * `ctx` done: every stage stops at once; items in flight are dropped; the open batch (whole
//    documents only) is committed. Outcome interrupted.
//  * a stage with the abort policy fails: the pipeline's context is cancelled with that error as
//    its cause; the open batch is rolled back (dropped), so the database holds exactly the
//    batches committed before. Outcome aborted.
// In every case the database is consistent: each committed batch is whole (store.hpp).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <functional>
#include <string>

#include <spindle/context.hpp>

#include "corpus.hpp"
#include "faults.hpp"
#include "progress.hpp"
#include "report.hpp"

namespace pipeline {

struct Config {
  CorpusSpec corpus;            // the generated corpus (when neither urls_file nor dir is set)
  std::string urls_file;        // else: fetch the http:// URLs listed in this file
  std::string dir;              // else: read the *.json files of this directory
  std::size_t fetchers = 16;    // workers per stage
  std::size_t parsers = 2;
  std::size_t transformers = 2;
  std::size_t buffer = 64;      // capacity of each channel between stages
  std::size_t batch = 256;      // documents per transaction
  std::string db_path;          // required
  // Per stage (fetch, parse, transform, store): policy and injected failure rate.
  std::array<StagePolicy, kStages> stages = {StagePolicy{OnError::retry}, StagePolicy{OnError::skip},
                                             StagePolicy{OnError::skip}, StagePolicy{OnError::abort}};
  int attempts = 4;                                   // retry: attempts in all per item
  spindle::Duration backoff = std::chrono::milliseconds(10);      // retry: first delay's cap
  spindle::Duration backoff_max = std::chrono::milliseconds(500);
  spindle::Duration fetch_timeout = std::chrono::seconds(10);    // per HTTP request
  ProgressMode progress = ProgressMode::off;
  std::FILE* out = stdout;      // where progress goes
  // Called by the store's fiber after each committed batch (tests stop runs from here).
  std::function<void(const StoreTotals&)> on_commit;
};

// $TMPDIR/spindle-pipeline.db (or /tmp/...).
[[nodiscard]] std::string default_db_path();

// Runs the pipeline once (see the file comment). Call from a fiber. Never throws for the
// outcomes above: they are in the report.
[[nodiscard]] Report run(const Config& cfg, const spindle::Context& ctx = spindle::background(),
                         const spindle::Context& stop = spindle::background());

// run() with SIGINT and SIGTERM (spindle::signal): the first stops the source and drains (as
// `stop`), a second drops what is in flight (as `ctx`).
[[nodiscard]] Report run_interruptible(const Config& cfg);

}  // namespace pipeline
