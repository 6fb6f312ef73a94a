#include "progress.hpp"

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include <spindle/net/blocking.hpp>

namespace pipeline {
namespace {

constexpr std::size_t kBarWidth = 30;

std::string bar(double fraction) {
  fraction = std::clamp(fraction, 0.0, 1.0);
  const auto full = static_cast<std::size_t>(fraction * kBarWidth);
  std::string b = "[";
  b.append(full, '=');
  if (full < kBarWidth) {
    b += '>';
    b.append(kBarWidth - full - 1, ' ');
  }
  b += ']';
  return b;
}

}  // namespace

spindle::Duration Progress::period() const noexcept {
  return mode_ == ProgressMode::tty ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000);
}

std::vector<std::string> tty_frame(const Snapshot& s, double docs_per_s) {
  std::vector<std::string> lines;
  const double secs = std::chrono::duration<double>(s.elapsed).count();
  if (s.expected > 0) {
    const double f = static_cast<double>(s.stored.documents) / static_cast<double>(s.expected);
    lines.push_back(fmt::format("pipeline {} {:>5.1f}%  {} / {} docs stored  {} docs/s  {:.1f} s", bar(f), 100 * f,
                                with_commas(s.stored.documents), with_commas(s.expected),
                                with_commas(static_cast<std::uint64_t>(docs_per_s)), secs));
  } else {
    lines.push_back(fmt::format("pipeline  {} docs stored  {} docs/s  {:.1f} s", with_commas(s.stored.documents),
                                with_commas(static_cast<std::uint64_t>(docs_per_s)), secs));
  }
  lines.push_back(fmt::format("  {:<10} {:>7} {:>10} {:>10} {:>7} {:>8} {:>9} {:>8} {:>8}", "stage", "workers", "in",
                              "out", "errors", "retries", "queue", "p50", "p99"));
  for (const StageReport& st : s.stages) {
    const bool source = st.policy.empty();
    lines.push_back(fmt::format("  {:<10} {:>7} {:>10} {:>10} {:>7} {:>8} {:>9} {:>8} {:>8}", st.name, st.workers,
                                source ? "-" : with_commas(st.in), with_commas(st.out), with_commas(st.errors),
                                source ? "-" : with_commas(st.retries),
                                source ? "-" : fmt::format("{}/{}", st.queue_depth, st.queue_capacity),
                                format_latency(st.latency.p50), format_latency(st.latency.p99)));
  }
  if (!s.state.empty()) lines.push_back("  " + s.state);
  return lines;
}

std::string plain_line(const Snapshot& s, double docs_per_s) {
  std::string line = fmt::format("[{:6.1f}s] stored {}", std::chrono::duration<double>(s.elapsed).count(),
                                 with_commas(s.stored.documents));
  if (s.expected > 0) {
    line += fmt::format("/{} ({:.0f}%)", with_commas(s.expected),
                        100.0 * static_cast<double>(s.stored.documents) / static_cast<double>(s.expected));
  }
  line += fmt::format(", {} docs/s", with_commas(static_cast<std::uint64_t>(docs_per_s)));
  std::uint64_t errors = 0, retries = 0;
  for (const StageReport& st : s.stages) {
    errors += st.errors;
    retries += st.retries;
    if (st.policy.empty()) continue;  // the source: its count is fetch's "in"
    line += fmt::format(" | {} {} q{}", st.name, with_commas(st.in), st.queue_depth);
  }
  line += fmt::format(" | errors {} retries {}", with_commas(errors), with_commas(retries));
  if (!s.state.empty()) line += " | " + s.state;
  return line;
}

void Progress::write(const std::string& text) {
  std::FILE* out = out_;
  spindle::blocking([&] {
    std::fwrite(text.data(), 1, text.size(), out);
    std::fflush(out);
  });
}

void Progress::draw(const Snapshot& s) {
  if (mode_ == ProgressMode::off) return;
  // Throughput over the last second or so (the whole run's average until then).
  while (history_.size() > 1 && s.elapsed - history_[1].first >= std::chrono::seconds(1)) history_.pop_front();
  const auto [t0, n0] = history_.empty() ? std::pair<spindle::Duration, std::uint64_t>{} : history_.front();
  const double dt = std::chrono::duration<double>(s.elapsed - t0).count();
  const double rate = dt > 0 ? static_cast<double>(s.stored.documents - n0) / dt : 0;
  history_.emplace_back(s.elapsed, s.stored.documents);
  if (mode_ == ProgressMode::plain) {
    write(plain_line(s, rate) + "\n");
    return;
  }
  const std::vector<std::string> lines = tty_frame(s, rate);
  std::string text;
  if (lines_ > 0) text += fmt::format("\x1b[{}A", lines_);  // back to the frame's first line
  for (const std::string& l : lines) text += l + "\x1b[K\n";  // each line cleared to its end
  for (std::size_t i = lines.size(); i < lines_; ++i) text += "\x1b[K\n";
  if (lines_ > lines.size()) text += fmt::format("\x1b[{}A", lines_ - lines.size());
  lines_ = lines.size();
  write(text);
}

void Progress::finish(const Snapshot& s) {
  if (mode_ == ProgressMode::off) return;
  if (mode_ == ProgressMode::tty) {
    // The live frame gives way to the summary that follows: erase it.
    if (lines_ > 0) write(fmt::format("\x1b[{}A\x1b[J", lines_));
    lines_ = 0;
    return;
  }
  // The last plain line shows the whole run's average rate.
  history_.clear();
  draw(s);
}

}  // namespace pipeline
