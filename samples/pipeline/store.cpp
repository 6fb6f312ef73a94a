#include "store.hpp"

#include <sqlite3.h>

#include <string_view>
#include <unordered_map>

#include <spindle/net/blocking.hpp>

#include "errors.hpp"

namespace pipeline {
namespace {

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
DROP TABLE IF EXISTS documents;
DROP TABLE IF EXISTS words;
CREATE TABLE documents (
  doc            INTEGER PRIMARY KEY,
  source         TEXT NOT NULL,
  title          TEXT NOT NULL,
  words          INTEGER NOT NULL,
  distinct_words INTEGER NOT NULL,
  counts         TEXT NOT NULL
);
CREATE TABLE words (
  word        TEXT PRIMARY KEY,
  occurrences INTEGER NOT NULL,
  documents   INTEGER NOT NULL
) WITHOUT ROWID;
)sql";

std::string sqlite_message(sqlite3* db, std::string_view what) {
  return std::string(what) + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory");
}

}  // namespace

Store::Store(std::string path) : path_(std::move(path)) {
  std::string error = spindle::blocking([&]() -> std::string {
    if (sqlite3_open_v2(path_.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
      return sqlite_message(db_, "cannot open " + path_);
    }
    sqlite3_busy_timeout(db_, 5000);
    char* err = nullptr;
    if (sqlite3_exec(db_, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string m = "cannot create the tables in " + path_ + ": " + (err != nullptr ? err : "?");
      sqlite3_free(err);
      return m;
    }
    if (sqlite3_prepare_v2(db_,
                           "INSERT INTO documents(doc, source, title, words, distinct_words, counts) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                           -1, &insert_doc_, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_,
                           "INSERT INTO words(word, occurrences, documents) VALUES (?1, ?2, ?3) "
                           "ON CONFLICT(word) DO UPDATE SET occurrences = occurrences + excluded.occurrences, "
                           "documents = documents + excluded.documents",
                           -1, &upsert_word_, nullptr) != SQLITE_OK) {
      return sqlite_message(db_, "cannot prepare statements");
    }
    return {};
  });
  if (!error.empty()) {
    close();
    throw DatabaseError(error);
  }
}

Store::~Store() { close(); }

void Store::close() noexcept {
  if (db_ == nullptr) return;
  spindle::blocking([&] {
    sqlite3_finalize(insert_doc_);
    sqlite3_finalize(upsert_word_);
    sqlite3_close_v2(db_);
  });
  insert_doc_ = upsert_word_ = nullptr;
  db_ = nullptr;
}

std::error_code Store::commit(std::string* message) {
  if (batch_.empty()) return {};
  std::uint64_t words = 0;
  std::string error = spindle::blocking([&]() -> std::string {
    // Step a statement to completion; on failure, the message (the caller rolls back).
    auto run = [&](sqlite3_stmt* st, std::string_view what) -> std::string {
      const int rc = sqlite3_step(st);
      sqlite3_reset(st);
      sqlite3_clear_bindings(st);
      return rc == SQLITE_DONE ? std::string() : sqlite_message(db_, what);
    };
    auto exec = [&](const char* sql) -> std::string {
      return sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK ? std::string()
                                                                          : sqlite_message(db_, sql);
    };
    if (std::string e = exec("BEGIN IMMEDIATE"); !e.empty()) return e;
    // The batch's words, summed over its documents: one upsert per distinct word.
    std::unordered_map<std::string_view, std::pair<std::uint64_t, std::uint64_t>> index;
    std::string e;
    for (const Counted& c : batch_) {
      sqlite3_bind_int64(insert_doc_, 1, static_cast<sqlite3_int64>(c.index));
      sqlite3_bind_text(insert_doc_, 2, c.source.data(), static_cast<int>(c.source.size()), SQLITE_STATIC);
      sqlite3_bind_text(insert_doc_, 3, c.title.data(), static_cast<int>(c.title.size()), SQLITE_STATIC);
      sqlite3_bind_int64(insert_doc_, 4, static_cast<sqlite3_int64>(c.words));
      sqlite3_bind_int64(insert_doc_, 5, static_cast<sqlite3_int64>(c.counts.size()));
      sqlite3_bind_text(insert_doc_, 6, c.counts_json.data(), static_cast<int>(c.counts_json.size()), SQLITE_STATIC);
      if (e = run(insert_doc_, "insert into documents"); !e.empty()) break;
      words += c.words;
      for (const auto& [w, n] : c.counts) {
        auto& slot = index[w];
        slot.first += n;
        slot.second += 1;
      }
    }
    if (e.empty()) {
      for (const auto& [w, slot] : index) {
        sqlite3_bind_text(upsert_word_, 1, w.data(), static_cast<int>(w.size()), SQLITE_STATIC);
        sqlite3_bind_int64(upsert_word_, 2, static_cast<sqlite3_int64>(slot.first));
        sqlite3_bind_int64(upsert_word_, 3, static_cast<sqlite3_int64>(slot.second));
        if (e = run(upsert_word_, "upsert into words"); !e.empty()) break;
      }
    }
    if (e.empty()) e = exec("COMMIT");
    if (!e.empty()) (void)exec("ROLLBACK");
    return e;
  });
  if (!error.empty()) {
    if (message != nullptr) *message = std::move(error);
    return errc::database;
  }
  documents_.fetch_add(batch_.size(), std::memory_order_relaxed);
  words_.fetch_add(words, std::memory_order_relaxed);
  batches_.fetch_add(1, std::memory_order_relaxed);
  batch_.clear();
  return {};
}

std::uint64_t Store::word_rows() {
  return spindle::blocking([&]() -> std::uint64_t {
    sqlite3_stmt* st = nullptr;
    std::uint64_t n = 0;
    if (sqlite3_prepare_v2(db_, "SELECT count(*) FROM words", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      n = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
    }
    sqlite3_finalize(st);
    return n;
  });
}

StoreTotals Store::totals() const noexcept {
  return {documents_.load(std::memory_order_relaxed), words_.load(std::memory_order_relaxed),
          batches_.load(std::memory_order_relaxed)};
}

}  // namespace pipeline
