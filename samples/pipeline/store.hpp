// The store: documents and the global word index in SQLite, written by one writer in batches,
// each batch one transaction.
//
// Schema (the tables are dropped and re-created when the store opens; other tables in the file
// are left alone):
//   documents(doc INTEGER PRIMARY KEY, source, title, words, distinct_words, counts)
//       counts is the document's word counts as JSON, {"word": n, ...}, most frequent first
//   words(word TEXT PRIMARY KEY, occurrences, documents)      -- the global word index
// A batch inserts its documents and adds each word's occurrences and document count to `words`
// (one upsert per distinct word of the batch), all in one transaction: a reader (or a crash, or
// Ctrl-C) sees every document of a batch with its words counted, or none of them. So at any
// committed point: sum(documents.words) = sum(words.occurrences) and
// sum(documents.distinct_words) = sum(words.documents).
//
// Every SQLite call runs on spindle's blocking pool (spindle::blocking), never on a worker.
//
// Thread-safety: one writer. add(), commit(), discard() and close() are called by one fiber at
// a time (the pipeline's single store worker, then the run after the pipeline has ended: the
// pipeline's wait() orders them). totals() may be read by any fiber at any time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "stages.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace pipeline {

struct StoreTotals {
  std::uint64_t documents = 0;   // committed
  std::uint64_t words = 0;       // sum of the committed documents' words
  std::uint64_t batches = 0;     // committed transactions
};

class Store {
 public:
  // Opens (creates) the database and re-creates the tables. Throws DatabaseError.
  explicit Store(std::string path);
  ~Store();  // rolls back nothing (see discard()); closes the database
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  // Adds a document to the open batch (memory only).
  void add(Counted c) { batch_.push_back(std::move(c)); }
  [[nodiscard]] std::size_t pending() const noexcept { return batch_.size(); }

  // Writes the open batch as one transaction. On success the batch is empty and the totals
  // include it; on failure the transaction was rolled back, the batch is kept (a retry writes
  // it again) and the error is returned with SQLite's message in `*message`. An empty batch
  // commits nothing and succeeds.
  [[nodiscard]] std::error_code commit(std::string* message);
  // Drops the open batch: nothing of it reaches the database.
  void discard() noexcept { batch_.clear(); }

  [[nodiscard]] StoreTotals totals() const noexcept;
  // Rows of the words table (the distinct words stored so far), read from the database.
  [[nodiscard]] std::uint64_t word_rows();

 private:
  void close() noexcept;
  std::string path_;
  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_doc_ = nullptr;
  sqlite3_stmt* upsert_word_ = nullptr;
  std::vector<Counted> batch_;
  std::atomic<std::uint64_t> documents_{0}, words_{0}, batches_{0};
};

}  // namespace pipeline
