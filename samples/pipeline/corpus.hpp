// The generated corpus: JSON documents made on demand from their index, never stored.
//
// Document i is a pure function of (seed, i): the same request always gets the same bytes, so
// the origin needs no memory per document and a run of millions streams in constant space.
// Only the vocabulary (its words and a Zipf table, O(vocabulary)) is built up front.
//
//   {"id": 17, "title": "Document 17", "lang": "en",
//    "body": "Ba tiko le, mu. Ka rebo ..."}
//
// The body has exactly words_per_doc words drawn from the vocabulary with Zipf's law (rank r
// has weight 1/r), in sentences of 4 to 14 words: the first capitalised, commas here and
// there, a full stop at the end. Words are made of syllables (consonant + vowel), shortest
// first, so the frequent words are the short ones, as in a natural language. The tokenizer
// (stages.hpp) recovers exactly words_per_doc words from every body: a test can count.
//
// Thread-safety: a Corpus is immutable after construction; document() may be called from any
// number of fibers at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pipeline {

struct CorpusSpec {
  std::uint64_t docs = 10000;          // documents 0 .. docs-1
  std::uint32_t words_per_doc = 200;   // body words per document (>= 1)
  std::uint32_t vocabulary = 5000;     // distinct words to draw from (1 .. kMaxVocabulary)
  std::uint64_t seed = 1;              // the corpus (and the fault draws) follow from it
};

inline constexpr std::uint32_t kMaxVocabulary = 1'000'000;

class Corpus {
 public:
  // Throws std::invalid_argument for words_per_doc == 0 or a vocabulary out of range.
  explicit Corpus(CorpusSpec spec);

  [[nodiscard]] const CorpusSpec& spec() const noexcept { return spec_; }
  // Document `index` as JSON text (any index: the origin answers 404 past docs itself).
  [[nodiscard]] std::string document(std::uint64_t index) const;
  // The word of rank r (0 = the most frequent).
  [[nodiscard]] const std::string& word(std::uint32_t rank) const { return words_.at(rank); }

 private:
  CorpusSpec spec_;
  std::vector<std::string> words_;
  std::vector<double> cdf_;  // cdf_[r] = sum of the weights of ranks 0..r
};

// splitmix64's finaliser: a well-mixed 64-bit hash (also used for the fault draws).
[[nodiscard]] constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace pipeline
