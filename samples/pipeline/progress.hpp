// The live progress display.
//
// On a terminal (tty mode) a block of lines is redrawn in place about ten times a second (the
// cursor is moved back up with ANSI escapes): a progress bar, throughput, and per stage its
// counts, queue depth and latency. Otherwise (plain mode: output to a file or a pipe, as in CI)
// one plain line per second, nothing overwritten. Writes go through spindle::blocking (a
// terminal or a pipe can block the writer).
//
// Thread-safety: one fiber draws (the run's display fiber, then the run itself at the end).
#pragma once

#include <cstdint>
#include <cstdio>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include <spindle/clock.hpp>

#include "report.hpp"

namespace pipeline {

enum class ProgressMode : std::uint8_t { off, plain, tty };

struct Snapshot {
  std::vector<StageReport> stages;
  StoreTotals stored;
  std::uint64_t expected = 0;   // 0: not known
  spindle::Duration elapsed{};
  std::string state;            // "" while running normally; else what is happening
};

class Progress {
 public:
  Progress(ProgressMode mode, std::FILE* out) noexcept : mode_(mode), out_(out) {}
  [[nodiscard]] ProgressMode mode() const noexcept { return mode_; }
  // How often to draw: 100 ms on a terminal, 1 s otherwise.
  [[nodiscard]] spindle::Duration period() const noexcept;
  // Draws one frame (tty: over the previous one; plain: one more line).
  void draw(const Snapshot& s);
  // The end (tty: the live frame is erased, the summary takes its place; plain: one last
  // line, with the whole run's average rate).
  void finish(const Snapshot& s);

 private:
  void write(const std::string& text);
  ProgressMode mode_;
  std::FILE* out_;
  std::size_t lines_ = 0;  // lines of the frame on screen (tty)
  // (elapsed, stored) of the frames of the last second: the rate shown is over that window
  // (batches commit in bursts; a rate over 100 ms would jump).
  std::deque<std::pair<spindle::Duration, std::uint64_t>> history_;
};

// The frames, exposed for tests.
[[nodiscard]] std::vector<std::string> tty_frame(const Snapshot& s, double docs_per_s);
[[nodiscard]] std::string plain_line(const Snapshot& s, double docs_per_s);

}  // namespace pipeline
