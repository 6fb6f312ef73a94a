#include "corpus.hpp"

#include <algorithm>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace pipeline {
namespace {

constexpr std::string_view kConsonants = "bdfgklmnprstvz";
constexpr std::string_view kVowels = "aeiou";
constexpr std::uint64_t kSyllables = kConsonants.size() * kVowels.size();  // 70

// Word number k in the order: all 1-syllable words, then all 2-syllable words, ...
std::string make_word(std::uint64_t k) {
  std::size_t len = 1;
  std::uint64_t block = kSyllables;
  while (k >= block) {
    k -= block;
    block *= kSyllables;
    ++len;
  }
  std::string w(2 * len, ' ');
  for (std::size_t i = len; i-- > 0;) {
    const std::uint64_t s = k % kSyllables;
    k /= kSyllables;
    w[2 * i] = kConsonants[s / kVowels.size()];
    w[2 * i + 1] = kVowels[s % kVowels.size()];
  }
  return w;
}

// A small, fast generator for one document (splitmix64 as a stream).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) noexcept : s_(seed) {}
  std::uint64_t next() noexcept {
    s_ += 0x9e3779b97f4a7c15ULL;
    return mix64(s_ - 0x9e3779b97f4a7c15ULL);
  }
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  std::uint32_t below(std::uint32_t n) noexcept { return static_cast<std::uint32_t>(next() % n); }

 private:
  std::uint64_t s_;
};

}  // namespace

Corpus::Corpus(CorpusSpec spec) : spec_(spec) {
  if (spec_.words_per_doc == 0) throw std::invalid_argument("words per document must be at least 1");
  if (spec_.vocabulary == 0 || spec_.vocabulary > kMaxVocabulary) {
    throw std::invalid_argument("vocabulary must be between 1 and " + std::to_string(kMaxVocabulary));
  }
  words_.reserve(spec_.vocabulary);
  cdf_.reserve(spec_.vocabulary);
  double total = 0;
  for (std::uint32_t r = 0; r < spec_.vocabulary; ++r) {
    words_.push_back(make_word(r));
    total += 1.0 / static_cast<double>(r + 1);
    cdf_.push_back(total);
  }
}

std::string Corpus::document(std::uint64_t index) const {
  Rng rng(mix64(spec_.seed ^ mix64(index)));
  std::string body;
  body.reserve(static_cast<std::size_t>(spec_.words_per_doc) * 6);
  std::uint32_t left_in_sentence = 0;
  for (std::uint32_t i = 0; i < spec_.words_per_doc; ++i) {
    const double u = rng.uniform() * cdf_.back();
    const auto rank = static_cast<std::size_t>(std::upper_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    const std::string& w = words_[std::min(rank, words_.size() - 1)];
    const bool first = left_in_sentence == 0;
    if (first) left_in_sentence = 4 + rng.below(11);
    if (i > 0) body += ' ';
    body += w;
    if (first) body[body.size() - w.size()] = static_cast<char>(body[body.size() - w.size()] - 'a' + 'A');
    --left_in_sentence;
    if (left_in_sentence == 0 || i + 1 == spec_.words_per_doc) {
      body += '.';
      left_in_sentence = 0;
    } else if (rng.below(8) == 0) {
      body += ',';
    }
  }
  nlohmann::json doc = {
      {"id", index},
      {"title", "Document " + std::to_string(index)},
      {"lang", "en"},
      {"body", std::move(body)},
  };
  return doc.dump();
}

}  // namespace pipeline
