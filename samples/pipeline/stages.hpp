// The items that flow between the stages, and the work each stage does on one item.
//
//   source ──Work──▶ fetch ──Fetched──▶ parse ──Doc──▶ transform ──Counted──▶ store
//
// Everything here is a plain function of its input (no shared state), so the stages can run
// with any number of workers; run.cpp wires them into a patterns::Pipeline and adds the error
// policies. The readers (lines of a URL list, files of a directory) hand out their input in
// chunks, so that a list of millions is never held in memory; their calls block (file I/O) and
// are made through spindle::blocking by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <spindle/patterns/result.hpp>

namespace pipeline {

using spindle::patterns::Result;

// What to fetch: an http:// URL, or a file path.
struct Work {
  std::uint64_t index = 0;   // position in the input (the document's key in the database)
  std::string location;
  bool is_file = false;
};

struct Fetched {
  std::uint64_t index = 0;
  std::string source;        // the URL or path it came from
  std::string body;
};

struct Doc {
  std::uint64_t index = 0;
  std::string source;
  std::string title;
  std::string text;
};

// A document's word counts: what the store writes.
struct Counted {
  std::uint64_t index = 0;
  std::string source;
  std::string title;
  std::uint64_t words = 0;                                   // tokens in the text
  std::vector<std::pair<std::string, std::uint32_t>> counts; // distinct words, most frequent first
  std::string counts_json;                                   // {"word": n, ...} in that order
};

// Parses a fetched body. The text is the "body" string if there is one, else "text", else every
// string value of the document joined; the title is "title" if it is a string, else the source.
// Errors: errc::bad_document (not JSON, or not an object).
[[nodiscard]] Result<Doc> parse_document(std::uint64_t index, const std::string& source, std::string_view body);

// Splits text into words: maximal runs of ASCII letters and digits and of non-ASCII bytes (UTF-8
// letters stay whole), ASCII lowercased. Calls on_word(std::string_view) for each.
template <class F>
void tokenize(std::string_view text, F&& on_word) {
  std::string word;
  auto flush = [&] {
    if (!word.empty()) {
      on_word(std::string_view(word));
      word.clear();
    }
  };
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80) {
      word += ch;
    } else if (c >= 'A' && c <= 'Z') {
      word += static_cast<char>(c - 'A' + 'a');
    } else {
      flush();
    }
  }
  flush();
}

// Counts the words of a document (tokenize). The word of a token needs no escaping in JSON (no
// quote, backslash or control byte can be part of one), so counts_json is written directly.
[[nodiscard]] Counted count_words(Doc d);

// Reads a list of URLs, one per line (blank lines and lines starting with '#' are ignored), a
// chunk at a time. Blocking calls: use through spindle::blocking.
class UrlListReader {
 public:
  // Opens the file; error() tells whether that failed.
  explicit UrlListReader(const std::string& path);
  [[nodiscard]] std::error_code error() const noexcept { return error_; }
  // Appends up to `max` entries to `out`; false at the end of the list.
  bool next(std::vector<Work>& out, std::size_t max);

 private:
  std::ifstream in_;
  std::error_code error_;
  std::uint64_t index_ = 0;
};

// Lists the *.json files of a directory (not recursive), a chunk at a time, in the order the
// file system gives them. Blocking calls: use through spindle::blocking.
class DirReader {
 public:
  explicit DirReader(const std::string& dir);
  [[nodiscard]] std::error_code error() const noexcept { return error_; }
  bool next(std::vector<Work>& out, std::size_t max);

 private:
  std::filesystem::directory_iterator it_;
  std::error_code error_;
  std::uint64_t index_ = 0;
};

// Reads a whole file (blocking: call it through spindle::blocking). Errors: errc::io_error.
[[nodiscard]] Result<std::string> read_file(const std::string& path);

}  // namespace pipeline
