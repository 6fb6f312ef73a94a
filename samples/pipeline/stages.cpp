#include "stages.hpp"

#include <algorithm>
#include <iterator>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "errors.hpp"

namespace pipeline {
namespace {

void collect_strings(const nlohmann::json& j, std::string& out) {
  if (j.is_string()) {
    if (!out.empty()) out += ' ';
    out += j.get_ref<const std::string&>();
  } else if (j.is_structured()) {
    for (const auto& v : j) collect_strings(v, out);
  }
}

}  // namespace

Result<Doc> parse_document(std::uint64_t index, const std::string& source, std::string_view body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return errc::bad_document;
  Doc d;
  d.index = index;
  if (auto t = j.find("title"); t != j.end() && t->is_string()) {
    d.title = std::move(t->get_ref<std::string&>());
  } else {
    d.title = source;
  }
  d.source = source;
  if (auto b = j.find("body"); b != j.end() && b->is_string()) {
    d.text = std::move(b->get_ref<std::string&>());
  } else if (auto t = j.find("text"); t != j.end() && t->is_string()) {
    d.text = std::move(t->get_ref<std::string&>());
  } else {
    collect_strings(j, d.text);
  }
  return d;
}

Counted count_words(Doc d) {
  std::unordered_map<std::string, std::uint32_t> counts;
  std::uint64_t words = 0;
  tokenize(d.text, [&](std::string_view w) {
    ++words;
    auto it = counts.find(std::string(w));
    if (it == counts.end()) {
      counts.emplace(std::string(w), 1);
    } else {
      ++it->second;
    }
  });
  Counted c;
  c.index = d.index;
  c.source = std::move(d.source);
  c.title = std::move(d.title);
  c.words = words;
  c.counts.assign(std::make_move_iterator(counts.begin()), std::make_move_iterator(counts.end()));
  std::sort(c.counts.begin(), c.counts.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  c.counts_json.reserve(c.counts.size() * 12 + 2);
  c.counts_json += '{';
  for (const auto& [w, n] : c.counts) {
    if (c.counts_json.size() > 1) c.counts_json += ',';
    c.counts_json += '"';
    c.counts_json += w;
    c.counts_json += "\":";
    c.counts_json += std::to_string(n);
  }
  c.counts_json += '}';
  return c;
}

UrlListReader::UrlListReader(const std::string& path) : in_(path) {
  if (!in_) error_ = std::error_code(errno != 0 ? errno : ENOENT, std::generic_category());
}

bool UrlListReader::next(std::vector<Work>& out, std::size_t max) {
  std::string line;
  std::size_t n = 0;
  while (n < max && std::getline(in_, line)) {
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line[b] == '#') continue;
    const auto e = line.find_last_not_of(" \t\r");
    out.push_back(Work{index_++, line.substr(b, e - b + 1), false});
    ++n;
  }
  return n == max;  // else the file is exhausted
}

DirReader::DirReader(const std::string& dir) : it_(dir, error_) {}

bool DirReader::next(std::vector<Work>& out, std::size_t max) {
  std::size_t n = 0;
  const std::filesystem::directory_iterator end;
  for (; it_ != end && n < max; it_.increment(error_)) {
    if (error_) return false;
    std::error_code ec;
    if (it_->path().extension() != ".json" || !it_->is_regular_file(ec)) continue;
    out.push_back(Work{index_++, it_->path().string(), true});
    ++n;
  }
  return it_ != end && !error_;
}

Result<std::string> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errc::io_error;
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return errc::io_error;
  return std::move(ss).str();
}

}  // namespace pipeline
