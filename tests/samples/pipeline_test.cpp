// Integration tests of samples/pipeline: the whole program minus its flags, on loopback (the
// origin on 127.0.0.1:0), with small corpora and temporary databases. Every count is exact: the
// failure draws are deterministic (faults.hpp), so each test computes which items fail and how
// many attempts they take, and checks the database and the metrics against that.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <utility>

#include <sqlite3.h>

#include <spindle/context.hpp>
#include <spindle/net/blocking.hpp>

#include "corpus.hpp"
#include "errors.hpp"
#include "faults.hpp"
#include "origin.hpp"
#include "run.hpp"
#include "stages.hpp"
#include "support/fiber_test.hpp"

namespace pipeline {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A temporary directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = fs::temp_directory_path() /
            ("spindle-pipeline-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// What the database holds, read back with plain SQL.
struct DbState {
  std::int64_t documents = -1, doc_words = 0, doc_distinct = 0;
  std::int64_t word_rows = 0, occurrences = 0, word_docs = 0;
  std::int64_t json_words = 0;  // the per-document counts, summed out of the JSON
  std::set<std::uint64_t> ids;
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> words;  // word -> occurrences, documents
};

DbState read_db(const std::string& path) {
  return spindle::blocking([&] {
    DbState s;
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      sqlite3_close(db);
      return s;
    }
    auto each = [&](const char* sql, auto&& row) {
      sqlite3_stmt* st = nullptr;
      EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &st, nullptr), SQLITE_OK) << sql << ": " << sqlite3_errmsg(db);
      while (st != nullptr && sqlite3_step(st) == SQLITE_ROW) row(st);
      sqlite3_finalize(st);
    };
    each("SELECT count(*), coalesce(sum(words), 0), coalesce(sum(distinct_words), 0) FROM documents",
         [&](sqlite3_stmt* st) {
           s.documents = sqlite3_column_int64(st, 0);
           s.doc_words = sqlite3_column_int64(st, 1);
           s.doc_distinct = sqlite3_column_int64(st, 2);
         });
    each("SELECT count(*), coalesce(sum(occurrences), 0), coalesce(sum(documents), 0) FROM words",
         [&](sqlite3_stmt* st) {
           s.word_rows = sqlite3_column_int64(st, 0);
           s.occurrences = sqlite3_column_int64(st, 1);
           s.word_docs = sqlite3_column_int64(st, 2);
         });
    each("SELECT coalesce(sum(j.value), 0) FROM documents, json_each(documents.counts) AS j",
         [&](sqlite3_stmt* st) { s.json_words = sqlite3_column_int64(st, 0); });
    each("SELECT doc FROM documents", [&](sqlite3_stmt* st) {
      s.ids.insert(static_cast<std::uint64_t>(sqlite3_column_int64(st, 0)));
    });
    each("SELECT word, occurrences, documents FROM words", [&](sqlite3_stmt* st) {
      s.words[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))] = {sqlite3_column_int64(st, 1),
                                                                             sqlite3_column_int64(st, 2)};
    });
    sqlite3_close(db);
    return s;
  });
}

// The invariants every committed state keeps (store.hpp): each document whole, the global
// index equal to the sum of the documents.
void expect_consistent(const DbState& s, std::uint32_t words_per_doc) {
  ASSERT_GE(s.documents, 0) << "database unreadable";
  EXPECT_EQ(s.doc_words, s.documents * words_per_doc);
  EXPECT_EQ(s.occurrences, s.doc_words);
  EXPECT_EQ(s.json_words, s.doc_words);
  EXPECT_EQ(s.word_docs, s.doc_distinct);
  EXPECT_EQ(static_cast<std::int64_t>(s.ids.size()), s.documents);
}

Config small_config(const std::string& db, std::uint64_t docs = 300) {
  Config c;
  c.corpus = CorpusSpec{.docs = docs, .words_per_doc = 40, .vocabulary = 300, .seed = 7};
  c.fetchers = 4;
  c.parsers = 2;
  c.transformers = 2;
  c.buffer = 8;
  c.batch = 32;
  c.db_path = db;
  c.backoff = 1ms;
  c.backoff_max = 2ms;
  for (auto& st : c.stages) st = StagePolicy{OnError::skip, 0};
  return c;
}

const StageReport& stage(const Report& r, std::string_view name) {
  for (const auto& s : r.stages) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no stage " + std::string(name));
}

// The word index the database must hold for the given documents of a corpus, computed
// directly from the generator, the parser and the tokenizer.
std::map<std::string, std::pair<std::int64_t, std::int64_t>> expected_index(const CorpusSpec& spec,
                                                                            const std::set<std::uint64_t>& ids) {
  const Corpus corpus(spec);
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> index;
  for (const std::uint64_t i : ids) {
    auto doc = parse_document(i, "", corpus.document(i));
    EXPECT_TRUE(doc.ok());
    const Counted c = count_words(std::move(*doc));
    for (const auto& [w, n] : c.counts) {
      index[w].first += n;
      index[w].second += 1;
    }
  }
  return index;
}

FIBER_TEST(Pipeline, StoresEveryDocumentAndCountsEveryWord) {
  TempDir tmp;
  const Config cfg = small_config(tmp.file("p.db"));
  const Report r = run(cfg);
  ASSERT_EQ(r.outcome, Outcome::completed) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_EQ(db.documents, 300);
  EXPECT_EQ(db.doc_words, 300 * 40);
  std::set<std::uint64_t> all;
  for (std::uint64_t i = 0; i < 300; ++i) all.insert(i);
  EXPECT_EQ(db.ids, all);
  EXPECT_EQ(db.words, expected_index(cfg.corpus, all));  // the global index, word by word
  EXPECT_EQ(r.stored.documents, 300u);
  EXPECT_EQ(r.stored.words, 300u * 40);
  EXPECT_EQ(r.stored.batches, (300u + 31) / 32);
  EXPECT_EQ(r.distinct_words, static_cast<std::uint64_t>(db.word_rows));
  for (const char* name : {"fetch", "parse", "transform", "store"}) {
    EXPECT_EQ(stage(r, name).in, 300u) << name;
    EXPECT_EQ(stage(r, name).out, 300u) << name;
    EXPECT_EQ(stage(r, name).errors, 0u) << name;
  }
  EXPECT_EQ(stage(r, "source").out, 300u);
  EXPECT_EQ(exit_code(r), 0);
}

FIBER_TEST(Pipeline, SkipDropsExactlyTheFailedItems) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"));
  cfg.stages[static_cast<std::size_t>(StageId::parse)] = StagePolicy{OnError::skip, 0.1};
  std::set<std::uint64_t> kept;
  std::uint64_t failed = 0;
  for (std::uint64_t i = 0; i < 300; ++i) {
    if (injected_failure(cfg.corpus.seed, StageId::parse, i, 1, 0.1)) {
      ++failed;
    } else {
      kept.insert(i);
    }
  }
  ASSERT_GT(failed, 0u);  // the test means something only if some items fail
  const Report r = run(cfg);
  ASSERT_EQ(r.outcome, Outcome::completed) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_EQ(db.ids, kept);
  EXPECT_EQ(db.words, expected_index(cfg.corpus, kept));
  EXPECT_EQ(stage(r, "parse").in, 300u);
  EXPECT_EQ(stage(r, "parse").errors, failed);
  EXPECT_EQ(stage(r, "parse").skipped, failed);
  EXPECT_EQ(stage(r, "parse").out, 300u - failed);
  EXPECT_EQ(stage(r, "parse").retries, 0u);
  EXPECT_EQ(stage(r, "store").out, 300u - failed);
  EXPECT_NE(stage(r, "parse").first_error.find("injected failure"), std::string::npos);
}

FIBER_TEST(Pipeline, RetryDeliversEverythingAndCountsEveryRetry) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"));
  cfg.attempts = 10;
  cfg.stages[static_cast<std::size_t>(StageId::fetch)] = StagePolicy{OnError::retry, 0.3};
  cfg.stages[static_cast<std::size_t>(StageId::transform)] = StagePolicy{OnError::retry, 0.2};
  // The attempts each item needs: the first attempt whose draw does not fail.
  auto retries_needed = [&](StageId id, double rate) {
    std::uint64_t retries = 0;
    for (std::uint64_t i = 0; i < 300; ++i) {
      int a = 1;
      while (injected_failure(cfg.corpus.seed, id, i, a, rate)) ++a;
      EXPECT_LE(a, cfg.attempts) << "item " << i << " would exhaust its attempts: pick another seed";
      retries += static_cast<std::uint64_t>(a - 1);
    }
    return retries;
  };
  const std::uint64_t fetch_retries = retries_needed(StageId::fetch, 0.3);
  const std::uint64_t transform_retries = retries_needed(StageId::transform, 0.2);
  ASSERT_GT(fetch_retries, 0u);
  ASSERT_GT(transform_retries, 0u);
  const Report r = run(cfg);
  ASSERT_EQ(r.outcome, Outcome::completed) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_EQ(db.documents, 300);
  EXPECT_EQ(stage(r, "fetch").retries, fetch_retries);
  EXPECT_EQ(stage(r, "transform").retries, transform_retries);
  EXPECT_EQ(stage(r, "parse").retries, 0u);
  for (const char* name : {"fetch", "parse", "transform", "store"}) {
    EXPECT_EQ(stage(r, name).errors, 0u) << name;
    EXPECT_EQ(stage(r, name).out, 300u) << name;
  }
}

FIBER_TEST(Pipeline, AbortEndsTheRunWithTheErrorAndKeepsOnlyWholeBatches) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"));
  cfg.stages[static_cast<std::size_t>(StageId::parse)] = StagePolicy{OnError::abort, 0.02};
  std::set<std::uint64_t> failing;
  for (std::uint64_t i = 0; i < 300; ++i) {
    if (injected_failure(cfg.corpus.seed, StageId::parse, i, 1, 0.02)) failing.insert(i);
  }
  ASSERT_FALSE(failing.empty());
  const Report r = run(cfg);
  ASSERT_EQ(r.outcome, Outcome::aborted);
  EXPECT_EQ(r.error, errc::injected);
  EXPECT_NE(r.error_detail.find("parse: doc "), std::string::npos) << r.error_detail;
  EXPECT_EQ(exit_code(r), 1);
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_EQ(db.documents % 32, 0) << "a partial batch was committed";
  EXPECT_EQ(static_cast<std::uint64_t>(db.documents), r.stored.documents);
  EXPECT_EQ(r.stored.documents, r.stored.batches * 32);
  EXPECT_LT(db.documents, 300);
  for (const std::uint64_t i : failing) EXPECT_EQ(db.ids.count(i), 0u) << "failed item " << i << " stored";
}

FIBER_TEST(Pipeline, StoreAbortRollsBackTheOpenBatch) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"));
  cfg.stages[static_cast<std::size_t>(StageId::store)] = StagePolicy{OnError::abort, 0.01};
  const Report r = run(cfg);
  ASSERT_EQ(r.outcome, Outcome::aborted);
  EXPECT_EQ(r.error, errc::injected);
  EXPECT_NE(r.error_detail.find("store: doc "), std::string::npos) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_EQ(db.documents % 32, 0);
  EXPECT_EQ(static_cast<std::uint64_t>(db.documents), r.stored.documents);
  // Everything the store accepted is either committed or was in the batch rolled back.
  EXPECT_EQ(stage(r, "store").out, r.stored.documents + r.rolled_back_docs);
}

FIBER_TEST(Pipeline, CancelMidRunLeavesAConsistentDatabase) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"), 5000);
  auto [ctx, cancel] = spindle::with_cancel(spindle::background());
  cfg.on_commit = [&cancel = cancel](const StoreTotals&) { cancel(); };  // after the first batch
  const Report r = run(cfg, ctx);
  ASSERT_EQ(r.outcome, Outcome::interrupted) << r.error_detail;
  EXPECT_EQ(exit_code(r), 130);
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_GE(db.documents, 32);
  EXPECT_LT(db.documents, 5000);
  EXPECT_EQ(static_cast<std::uint64_t>(db.documents), r.stored.documents);
  // Dropped in flight, never half-written: every item the store took is committed.
  EXPECT_EQ(stage(r, "store").out, r.stored.documents);
  // Items dropped by the cancellation are not errors.
  for (const char* name : {"fetch", "parse", "transform", "store"}) EXPECT_EQ(stage(r, name).errors, 0u) << name;
}

FIBER_TEST(Pipeline, StopDrainsEverythingAlreadyFetched) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"), 5000);
  auto [stop, cancel] = spindle::with_cancel(spindle::background());
  cfg.on_commit = [&cancel = cancel](const StoreTotals&) { cancel(); };
  const Report r = run(cfg, spindle::background(), stop);
  ASSERT_EQ(r.outcome, Outcome::interrupted) << r.error_detail;
  EXPECT_FALSE(r.error);
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  const std::uint64_t emitted = stage(r, "source").out;
  EXPECT_LT(emitted, 5000u);
  EXPECT_EQ(static_cast<std::uint64_t>(db.documents), emitted);  // nothing emitted was lost
  for (const char* name : {"fetch", "parse", "transform", "store"}) EXPECT_EQ(stage(r, name).out, emitted) << name;
}

FIBER_TEST(Pipeline, SigintStopsTheRunAndDrains) {
  TempDir tmp;
  Config cfg = small_config(tmp.file("p.db"), 50000);
  cfg.corpus.words_per_doc = 5;
  std::atomic<bool> sent{false};
  cfg.on_commit = [&sent](const StoreTotals&) {
    if (!sent.exchange(true)) {
      EXPECT_EQ(::kill(::getpid(), SIGINT), 0);
    }
  };
  const Report r = run_interruptible(cfg);
  ASSERT_TRUE(sent.load());
  ASSERT_EQ(r.outcome, Outcome::interrupted) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, cfg.corpus.words_per_doc);
  EXPECT_EQ(static_cast<std::uint64_t>(db.documents), stage(r, "source").out);
  EXPECT_LT(db.documents, 50000);
}

FIBER_TEST(Pipeline, ReadsADirectoryAndSkipsABadFile) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "docs";
  fs::create_directories(dir);
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir / name) << text; };
  write("a.json", R"({"title": "A", "body": "Hello, hello world."})");                 // 3 words
  write("b.json", R"({"text": "One two; THREE four!"})");                              // 4 words
  write("c.json", R"({"name": "x y", "tags": ["z", "x"], "n": 5})");                    // 4 words
  write("d.json", R"({"body": "unterminated)");                                          // bad
  write("notes.txt", "not json, and not read");
  Config cfg = small_config(tmp.file("p.db"));
  cfg.dir = dir.string();
  const Report r = run(cfg);
  ASSERT_EQ(r.outcome, Outcome::completed) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  EXPECT_EQ(db.documents, 3);
  EXPECT_EQ(db.doc_words, 11);
  EXPECT_EQ(db.occurrences, 11);
  EXPECT_EQ(db.json_words, 11);
  EXPECT_EQ(db.words.at("hello"), std::make_pair(std::int64_t{2}, std::int64_t{1}));
  EXPECT_EQ(db.words.at("x"), std::make_pair(std::int64_t{2}, std::int64_t{1}));
  EXPECT_EQ(db.words.at("three"), std::make_pair(std::int64_t{1}, std::int64_t{1}));
  EXPECT_EQ(stage(r, "source").out, 4u);
  EXPECT_EQ(stage(r, "parse").errors, 1u);
  EXPECT_NE(stage(r, "parse").first_error.find("bad document"), std::string::npos);
}

FIBER_TEST(Pipeline, FetchesAUrlListAndDoesNotRetryWhatCannotChange) {
  TempDir tmp;
  const Corpus corpus(CorpusSpec{.docs = 20, .words_per_doc = 10, .vocabulary = 50, .seed = 3});
  Origin origin(corpus);
  ASSERT_FALSE(origin.start());
  {
    std::ofstream list(tmp.file("urls.txt"));
    list << "# twenty documents and one that is not there\n\n";
    for (std::uint64_t i = 0; i < 20; ++i) list << origin.url(i) << "\n";
    list << "  " << origin.url(999) << "  \n";
    list << "ftp://127.0.0.1/not-http\n";
  }
  Config cfg = small_config(tmp.file("p.db"));
  cfg.corpus.words_per_doc = 10;
  cfg.urls_file = tmp.file("urls.txt");
  cfg.stages[static_cast<std::size_t>(StageId::fetch)] = StagePolicy{OnError::retry, 0};
  const Report r = run(cfg);
  origin.stop(2s);
  ASSERT_EQ(r.outcome, Outcome::completed) << r.error_detail;
  const DbState db = read_db(cfg.db_path);
  expect_consistent(db, 10);
  EXPECT_EQ(db.documents, 20);
  EXPECT_EQ(stage(r, "source").out, 22u);
  EXPECT_EQ(stage(r, "fetch").errors, 2u);
  EXPECT_EQ(stage(r, "fetch").retries, 0u);  // a 404 stays a 404, ftp:// stays unsupported
  const std::string& first = stage(r, "fetch").first_error;
  EXPECT_TRUE(first.find("/docs/999") != std::string::npos || first.find("ftp://") != std::string::npos) << first;
}

FIBER_TEST(Pipeline, AnUnwritableDatabaseFailsCleanly) {
  TempDir tmp;
  const Config cfg = small_config(tmp.file("no/such/dir/p.db"));
  const Report r = run(cfg);
  EXPECT_EQ(r.outcome, Outcome::failed);
  EXPECT_EQ(r.error, errc::database);
  EXPECT_NE(r.error_detail.find("cannot open"), std::string::npos) << r.error_detail;
  EXPECT_EQ(exit_code(r), 1);
}

TEST(PipelineCorpus, DocumentsAreDeterministicAndHaveExactlyTheirWords) {
  const Corpus corpus(CorpusSpec{.docs = 10, .words_per_doc = 123, .vocabulary = 1000, .seed = 5});
  for (std::uint64_t i = 0; i < 10; ++i) {
    const std::string text = corpus.document(i);
    EXPECT_EQ(text, corpus.document(i));
    auto doc = parse_document(i, "x", text);
    ASSERT_TRUE(doc.ok());
    EXPECT_EQ(count_words(std::move(*doc)).words, 123u);
  }
  EXPECT_NE(corpus.document(0), corpus.document(1));
  EXPECT_NE(corpus.document(0), Corpus(CorpusSpec{.docs = 10, .words_per_doc = 123, .vocabulary = 1000, .seed = 6})
                                    .document(0));
}

}  // namespace
}  // namespace pipeline
