// event_processor end to end: a real temp directory watched with inotify through the
// netpoller, the debouncers on a ManualClock, so "the file has been quiet for the quiet period"
// is clock.advance(), not a sleep. The test knows every event of a burst has been processed by
// creating a ".sync-N" file afterwards (ignored by the processor, but reported to on_event, and
// inotify delivers events in order) and waiting until on_event reports it.
//
// Checked: one action per burst per file, with the file's final size and SHA-256; separate files
// get separate actions; bursts separated by more than the quiet period get one each; a change
// inside the window extends it; a removed file is reported as such; --exec runs the command
// once per burst; idle debouncers are dropped; every non-ignored event lands in exactly one
// action; deleting the directory ends the run with an error.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/waitgroup.hpp>

#include "processor.hpp"
#include "support/fiber_test.hpp"

namespace event_processor {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using spindle::Chan;
using spindle::patterns::ManualClock;

constexpr Duration kQuiet = 100ms;
// a0\n..a9\n and b0\n..b9\n (sha256sum of the same bytes).
constexpr const char* kShaA = "4dbcee7e4e0859f6f7748e51178ccb74c5245340829a8e3a6853249d6b031429";
constexpr const char* kShaB = "cc67cf1862a6bf3f6f2175963d37098b9026105332b610ad728677fe8659385f";
constexpr const char* kShaSecond = "480c2336b410f1ad5f8bf1b28944490255804b65350c527787e74ebdd511e3a4";

fs::path make_temp_dir() {
  return spindle::blocking([] {
    std::string tmpl = (fs::temp_directory_path() / "spindle-events-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return fs::path(tmpl);
  });
}

// A processor on a temp directory, running in a fiber until stop().
class Harness {
 public:
  explicit Harness(const spindle::patterns::Clock* clock, std::string exec = {}, Duration quiet = kQuiet)
      : dir_(make_temp_dir()), aux_(make_temp_dir()), proc_(config(clock, std::move(exec), quiet)) {
    const std::error_code err = proc_.open();
    EXPECT_FALSE(err) << err.message();
    wg_.go([this] { run_err_ = proc_.run(cc_.ctx); });
  }
  ~Harness() {
    stop();
    spindle::blocking([&] {
      fs::remove_all(dir_);
      fs::remove_all(aux_);
    });
  }

  [[nodiscard]] const fs::path& dir() const { return dir_; }
  [[nodiscard]] const fs::path& aux() const { return aux_; }
  [[nodiscard]] Processor& proc() { return proc_; }

  // Appends each line with its own open/write/close (several inotify events per line).
  void append(const std::string& name, const std::vector<std::string>& lines) {
    const fs::path p = dir_ / name;
    spindle::blocking([&] {
      for (const auto& l : lines) {
        std::ofstream(p, std::ios::app) << l << '\n';
      }
    });
  }
  void remove(const std::string& name) {
    spindle::blocking([&] { fs::remove(dir_ / name); });
  }

  // Returns once the processor has handled every event caused before the call (see the file
  // comment). Bounded: a lost marker fails the test instead of hanging.
  void sync() {
    const std::string marker = ".sync-" + std::to_string(++syncs_);
    spindle::blocking([&] { std::ofstream(dir_ / marker) << 'x'; });
    auto [guard, cancel] = spindle::with_timeout(spindle::background(), 10s);
    for (;;) {
      auto r = events_.recv(guard);
      ASSERT_TRUE(r.value.has_value()) << "no inotify event for " << marker;
      if (*r.value == marker) return;
    }
  }

  // The next finished action (bounded wait: the action runs asynchronously on the workers).
  ActionResult next_result() {
    auto [guard, cancel] = spindle::with_timeout(spindle::background(), 10s);
    auto r = results_.recv(guard);
    EXPECT_TRUE(r.value.has_value()) << "no action arrived";
    return r.value.value_or(ActionResult{});
  }

  // Stops the processor (it drains its workers) and returns the actions not yet taken.
  std::vector<ActionResult> stop() {
    std::vector<ActionResult> rest;
    if (stopped_) return rest;
    stopped_ = true;
    cc_.cancel();
    wg_.wait();
    while (true) {
      auto r = results_.try_recv();
      if (!r.value) break;
      rest.push_back(std::move(*r.value));
    }
    return rest;
  }
  // Waits for run() to return on its own (the watch failed).
  std::error_code wait_run() {
    wg_.wait();
    stopped_ = true;
    return run_err_;
  }

 private:
  Config config(const spindle::patterns::Clock* clock, std::string exec, Duration quiet) {
    Config c;
    c.dir = dir_.string();
    c.quiet_period = quiet;
    c.exec = std::move(exec);
    c.clock = clock;
    c.on_event = [events = events_, ctx = cc_.ctx](std::string_view name, std::uint32_t) {
      (void)events.send(ctx, std::string(name));
    };
    c.on_action = [results = results_](const ActionResult& r) { results.send(r); };
    c.log = [](std::string_view) {};
    return c;
  }

  spindle::CancelableContext cc_ = spindle::with_cancel(spindle::background());
  Chan<std::string> events_{4096};
  Chan<ActionResult> results_{1024};
  fs::path dir_, aux_;
  Processor proc_;
  spindle::WaitGroup wg_;
  std::error_code run_err_;
  int syncs_ = 0;
  bool stopped_ = false;
};

std::vector<std::string> lines(char tag, int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(tag + std::to_string(i));
  return out;
}

// Every non-ignored event ends up in exactly one action.
void expect_events_accounted(const Stats& s, const std::vector<ActionResult>& all) {
  std::uint64_t sum = 0;
  for (const auto& r : all) sum += r.events;
  EXPECT_EQ(sum, s.events - s.ignored);
  EXPECT_EQ(s.bursts, all.size());
  EXPECT_EQ(s.actions, all.size());
  EXPECT_EQ(s.dropped, 0u);
}

FIBER_TEST(EventProcessor, ABurstRunsTheActionOnce) {
  ManualClock clock;
  Harness h(&clock);
  h.append("a.txt", lines('a', 10));  // ten open/append/close cycles: one burst
  h.sync();
  EXPECT_EQ(h.proc().stats().bursts, 0u);        // still inside the quiet period
  EXPECT_EQ(h.proc().stats().live_debouncers, 1u);
  clock.advance(kQuiet - 1ms);
  EXPECT_EQ(h.proc().stats().bursts, 0u);
  clock.advance(1ms);                              // quiet for the whole period: the burst ends
  EXPECT_EQ(h.proc().stats().bursts, 1u);
  ActionResult r = h.next_result();
  EXPECT_FALSE(r.err) << r.err.message();
  EXPECT_EQ(r.file, "a.txt");
  EXPECT_TRUE(r.exists);
  EXPECT_EQ(r.size, 30u);
  EXPECT_EQ(r.sha256, kShaA);
  EXPECT_GE(r.events, 10u);  // at least a close-write per line (modify events may coalesce)

  // Nothing more happens: another quiet period fires nothing, and the idle debouncer is gone.
  clock.advance(kQuiet * 3);
  h.sync();
  EXPECT_EQ(h.proc().stats().live_debouncers, 0u);
  std::vector<ActionResult> rest = h.stop();
  EXPECT_TRUE(rest.empty());
  expect_events_accounted(h.proc().stats(), {r});
}

FIBER_TEST(EventProcessor, SeparateFilesGetSeparateActions) {
  ManualClock clock;
  Harness h(&clock);
  for (int i = 0; i < 10; ++i) {  // interleaved bursts on two files, and one on a third
    h.append("a.txt", {"a" + std::to_string(i)});
    h.append("b.txt", {"b" + std::to_string(i)});
  }
  h.append("c.txt", {"second"});
  h.sync();
  EXPECT_EQ(h.proc().stats().live_debouncers, 3u);
  clock.advance(kQuiet);
  EXPECT_EQ(h.proc().stats().bursts, 3u);
  std::vector<ActionResult> all;
  for (int i = 0; i < 3; ++i) all.push_back(h.next_result());
  std::set<std::string> files;
  for (const auto& r : all) {
    files.insert(r.file);
    EXPECT_FALSE(r.err) << r.err.message();
    const char* want = r.file == "a.txt" ? kShaA : r.file == "b.txt" ? kShaB : kShaSecond;
    EXPECT_EQ(r.sha256, want) << r.file;
  }
  EXPECT_EQ(files, (std::set<std::string>{"a.txt", "b.txt", "c.txt"}));
  clock.advance(kQuiet * 3);
  h.sync();
  EXPECT_EQ(h.proc().stats().live_debouncers, 0u);
  EXPECT_EQ(h.proc().stats().max_live_debouncers, 3u);
  EXPECT_TRUE(h.stop().empty());
  expect_events_accounted(h.proc().stats(), all);
}

FIBER_TEST(EventProcessor, BurstsFartherApartThanTheQuietPeriodGetOneActionEach) {
  ManualClock clock;
  Harness h(&clock);
  std::vector<ActionResult> all;
  h.append("a.txt", lines('a', 10));
  h.sync();
  clock.advance(kQuiet + 1ms);
  all.push_back(h.next_result());
  EXPECT_EQ(all.back().sha256, kShaA);

  // Second burst: a change inside the window extends it (debounce, not throttle).
  h.append("a.txt", {"first"});
  h.sync();
  clock.advance(kQuiet / 2);
  h.remove("a.txt");
  h.append("a.txt", {"second"});
  h.sync();
  clock.advance(kQuiet / 2);  // a full quiet period since the first change, not since the last
  EXPECT_EQ(h.proc().stats().bursts, 1u);
  clock.advance(kQuiet / 2);
  EXPECT_EQ(h.proc().stats().bursts, 2u);
  all.push_back(h.next_result());
  EXPECT_EQ(all.back().file, "a.txt");
  EXPECT_EQ(all.back().sha256, kShaSecond);

  // Third burst ends with the file removed.
  h.append("a.txt", {"gone soon"});
  h.remove("a.txt");
  h.sync();
  clock.advance(kQuiet);
  all.push_back(h.next_result());
  EXPECT_FALSE(all.back().exists);
  EXPECT_FALSE(all.back().err);

  clock.advance(kQuiet * 3);
  EXPECT_TRUE(h.stop().empty());
  expect_events_accounted(h.proc().stats(), all);
}

FIBER_TEST(EventProcessor, ExecRunsTheCommandOncePerBurst) {
  ManualClock clock;
  const fs::path log_dir = make_temp_dir();
  const fs::path log = log_dir / "log";
  Harness h(&clock, "printf '%s\\n' \"$1\" >> '" + log.string() + "'");
  h.append("a.txt", lines('a', 5));
  h.append("b.txt", lines('b', 5));
  h.sync();
  clock.advance(kQuiet);
  std::vector<ActionResult> all{h.next_result(), h.next_result()};
  for (const auto& r : all) {
    EXPECT_FALSE(r.err) << r.err.message();
    EXPECT_TRUE(r.exec);
    EXPECT_EQ(r.exit_status, 0);
  }
  clock.advance(kQuiet * 3);
  EXPECT_TRUE(h.stop().empty());
  const std::string text = spindle::blocking([&] {
    std::ifstream in(log);
    return std::string(std::istreambuf_iterator<char>(in), {});
  });
  std::multiset<std::string> ran;
  std::istringstream ss(text);
  for (std::string l; std::getline(ss, l);) ran.insert(l);
  EXPECT_EQ(ran, (std::multiset<std::string>{(h.dir() / "a.txt").string(), (h.dir() / "b.txt").string()}));
  expect_events_accounted(h.proc().stats(), all);
  spindle::blocking([&] { fs::remove_all(log_dir); });
}

FIBER_TEST(EventProcessor, ExecReportsTheExitStatus) {
  ManualClock clock;
  Harness h(&clock, "exit 3");
  h.append("a.txt", {"x"});
  h.sync();
  clock.advance(kQuiet);
  ActionResult r = h.next_result();
  EXPECT_FALSE(r.err);
  EXPECT_EQ(r.exit_status, 3);
}

// The system clock path (timer fibers, a real quiet period): the test waits on the action's
// channel, never sleeps. A slow machine may split the burst in two; the last action has it all.
FIBER_TEST(EventProcessor, RealClockEndToEnd) {
  Harness h(nullptr, {}, 50ms);
  h.append("a.txt", lines('a', 10));
  for (;;) {
    ActionResult r = h.next_result();
    ASSERT_EQ(r.file, "a.txt");
    ASSERT_FALSE(r.err) << r.err.message();
    if (r.size == 30u) {
      EXPECT_EQ(r.sha256, kShaA);
      break;
    }
  }
}

FIBER_TEST(EventProcessor, DeletingTheDirectoryEndsTheRun) {
  ManualClock clock;
  Harness h(&clock);
  h.append("a.txt", {"x"});
  h.sync();
  spindle::blocking([&] { fs::remove_all(h.dir()); });
  const std::error_code err = h.wait_run();
  EXPECT_EQ(err, std::errc::no_such_file_or_directory);
  EXPECT_EQ(h.proc().stats().dropped, 1u);  // a.txt's burst was still pending
}

FIBER_TEST(EventProcessor, OpenRejectsWhatItCannotWatch) {
  Config c;
  c.dir = "/nonexistent-spindle-dir";
  Processor missing(c);
  EXPECT_EQ(missing.open(), std::errc::no_such_file_or_directory);
  c.dir = "/proc/self/exe";
  Processor file(c);
  EXPECT_EQ(file.open(), std::errc::not_a_directory);
  c.dir = "/tmp";
  c.quiet_period = Duration::zero();
  Processor zero(c);
  EXPECT_EQ(zero.open(), std::errc::invalid_argument);
}

}  // namespace
}  // namespace event_processor
