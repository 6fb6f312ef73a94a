#include "report.hpp"

#include <chrono>

#include <fmt/format.h>

namespace pipeline {

const char* to_string(Outcome o) noexcept {
  switch (o) {
    case Outcome::completed: return "completed";
    case Outcome::interrupted: return "interrupted";
    case Outcome::aborted: return "aborted";
    case Outcome::failed: return "failed";
  }
  return "?";
}

int exit_code(const Report& r) noexcept {
  switch (r.outcome) {
    case Outcome::completed: return 0;
    case Outcome::interrupted: return 130;  // 128 + SIGINT, as a shell reports Ctrl-C
    default: return 1;
  }
}

std::string with_commas(std::uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string format_latency(spindle::Duration d) {
  const double us = std::chrono::duration<double, std::micro>(d).count();
  if (us <= 0) return "-";
  if (us < 1) return "<1µs";
  if (us < 1000) return fmt::format("{:.0f}µs", us);
  if (us < 1'000'000) return fmt::format("{:.1f}ms", us / 1000);
  return fmt::format("{:.2f}s", us / 1'000'000);
}

std::string format_summary(const Report& r) {
  std::string s;
  const double secs = std::chrono::duration<double>(r.elapsed).count();
  const double rate = secs > 0 ? static_cast<double>(r.stored.documents) / secs : 0;
  std::string of = r.expected > 0 ? fmt::format(" of {}", with_commas(r.expected)) : "";
  if (r.outcome == Outcome::failed) {
    return fmt::format("pipeline failed: {}: {}\n", r.error_detail, r.error.message());
  }
  s += fmt::format("pipeline {} in {:.2f} s: {}{} documents stored ({} words, {} distinct), {} docs/s\n",
                   to_string(r.outcome), secs, with_commas(r.stored.documents), of, with_commas(r.stored.words),
                   with_commas(r.distinct_words), with_commas(static_cast<std::uint64_t>(rate)));
  if (r.outcome == Outcome::aborted) {
    s += fmt::format("  aborted by {}\n", r.error_detail);
    if (r.rolled_back) {
      s += fmt::format("  the open batch ({} documents) was rolled back; the database holds {} whole batches\n",
                       with_commas(r.rolled_back_docs), with_commas(r.stored.batches));
    }
  }
  if (!r.input.empty()) s += fmt::format("  input: {}\n", r.input);
  s += '\n';
  s += fmt::format("  {:<10} {:>6} {:>7} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}\n", "stage",
                   "policy", "workers", "in", "out", "errors", "skipped", "retries", "p50", "p90", "p99", "max",
                   "queue");
  for (const StageReport& st : r.stages) {
    const bool source = st.policy.empty();
    s += fmt::format("  {:<10} {:>6} {:>7} {:>10} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9}\n", st.name,
                     source ? "-" : st.policy, st.workers, source ? "-" : with_commas(st.in), with_commas(st.out),
                     with_commas(st.errors), with_commas(st.skipped), source ? "-" : with_commas(st.retries),
                     format_latency(st.latency.p50), format_latency(st.latency.p90), format_latency(st.latency.p99),
                     format_latency(st.latency.max),
                     source ? "-" : fmt::format("{}/{}", st.queue_depth, st.queue_capacity));
  }
  bool any_error = false;
  for (const StageReport& st : r.stages) {
    if (st.first_error.empty()) continue;
    if (!any_error) s += "\n  errors (the first of each stage):\n";
    any_error = true;
    s += fmt::format("    {} ({} in all)\n", st.first_error, with_commas(st.errors));
  }
  s += fmt::format("\n  database: {}  (documents: {} rows in {} batches; words: {} rows)\n", r.db_path,
                   with_commas(r.stored.documents), with_commas(r.stored.batches), with_commas(r.distinct_words));
  return s;
}

}  // namespace pipeline
