// Execution traces: the file trace::stop() writes is valid Chrome Trace Event JSON with a track
// per worker, fiber runs as complete ("X") slices, parks with their reason and call site, wakes
// saying who woke whom, and flow arrows from each wake to the run it caused.
//
// Set SPINDLE_TRACE_EXAMPLE=path to keep the ping-pong trace (scripts/trace_to_svg.py renders it
// for the README).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <spindle/chan.hpp>
#include <spindle/debug.hpp>
#include <spindle/errors.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/trace.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

std::string temp_trace_path(const char* tag) {
  static std::atomic<int> seq{0};
  return ::testing::TempDir() + "spindle_trace_" + std::to_string(::getpid()) + "_" + tag + "_" +
         std::to_string(seq.fetch_add(1)) + ".json";
}

json read_json(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << path;
  return json::parse(in);  // throws (failing the test) if the file is not valid JSON
}

// The program traced: two named fibers playing ping-pong over unbuffered channels, sleeping now
// and then, a few short-lived sleepers, and CPU-bound fibers sending to a collector. Returns the
// ids of ping and pong.
std::pair<std::uint64_t, std::uint64_t> ping_pong(int rounds) {
  Chan<int> ping(0), pong(0);
  std::atomic<std::uint64_t> ping_id{0}, pong_id{0};
  WaitGroup wg;
  wg.go([&] {
    this_fiber::set_name("ping");
    ping_id = this_fiber::id();
    for (int i = 0; i < rounds; ++i) {
      ping.send(i);
      EXPECT_EQ(*pong.recv(), i);
      if (i % 4 == 0) this_fiber::sleep_for(200us);
    }
  });
  wg.go([&] {
    this_fiber::set_name("pong");
    pong_id = this_fiber::id();
    for (int i = 0; i < rounds; ++i) {
      const int v = *ping.recv();
      pong.send(v);
    }
  });
  for (int i = 0; i < 3; ++i) {
    wg.go([i] { this_fiber::sleep_for((i + 1) * 300us); });
  }
  // A fan-out of CPU-bound fibers feeding a collector: gives idle workers something to steal.
  Chan<std::uint64_t> results(0);
  for (int i = 0; i < 6; ++i) {
    wg.go([i, results] {
      this_fiber::set_name("hash");
      std::uint64_t h = 1469598103934665603ull + static_cast<std::uint64_t>(i);
      for (int round = 0; round < 3; ++round) {
        for (int k = 0; k < 300'000; ++k) h = (h ^ static_cast<std::uint64_t>(k)) * 1099511628211ull;
        results.send(h);
      }
    });
  }
  wg.go([results] {
    this_fiber::set_name("collector");
    for (int i = 0; i < 18; ++i) (void)results.recv();
  });
  // The trace must show the wait below parked, whatever the timing: on a loaded CI machine (4
  // workers on 2 vCPUs, two tests at once, ASan) the group once finished before the main fiber
  // got to wg.wait(), which then parked nobody. Hold the group open until the dump shows it.
  wg.go([] {
    while (fiber_dump().find("\"main\" [waitgroup wait") == std::string::npos) this_fiber::yield();
  });
  wg.wait();
  return {ping_id.load(), pong_id.load()};
}

struct Parsed {
  json doc;
  std::map<int, std::string> track_names;        // tid -> thread_name
  std::vector<json> slices, spawns, wakes, flows_s, flows_f;
};

Parsed parse_trace(const std::string& path) {
  Parsed p{read_json(path), {}, {}, {}, {}, {}, {}};
  for (const json& e : p.doc.at("traceEvents")) {
    const std::string ph = e.at("ph");
    EXPECT_EQ(e.at("pid"), 1);
    if (ph == "M") {
      if (e.at("name") == "thread_name") p.track_names[e.at("tid")] = e.at("args").at("name");
      continue;
    }
    EXPECT_TRUE(e.at("ts").is_number());
    EXPECT_GE(e.at("ts").get<double>(), 0.0);
    if (ph == "X" && e.at("cat") == "fiber") p.slices.push_back(e);
    else if (ph == "i" && e.at("name") == "spawn") p.spawns.push_back(e);
    else if (ph == "i" && e.at("name") == "wake") p.wakes.push_back(e);
    else if (ph == "s") p.flows_s.push_back(e);
    else if (ph == "f") p.flows_f.push_back(e);
  }
  return p;
}

FIBER_TEST(Trace, PingPongTraceIsValidChromeTraceJson) {
  const char* keep = std::getenv("SPINDLE_TRACE_EXAMPLE");
  const std::string path = keep != nullptr && workers() == 2 ? std::string(keep) : temp_trace_path("pingpong");
  trace::start(path);
  EXPECT_TRUE(trace::recording());
  const auto [ping_id, pong_id] = ping_pong(40);
  // wg.wait() returns once they called done(); their exits are traced as they leave, which
  // num_fibers() counts after: wait for that, or stop() may come first.
  ASSERT_TRUE(testing::wait_other_fibers_at_most(0));
  const trace::Summary sum = trace::stop();
  EXPECT_FALSE(trace::recording());
  EXPECT_EQ(sum.path, path);
  EXPECT_EQ(sum.dropped, 0u);
  EXPECT_GT(sum.events, 0u);

  const Parsed p = parse_trace(path);
  EXPECT_EQ(p.doc.at("displayTimeUnit"), "ns");
  EXPECT_EQ(p.doc.at("otherData").at("dropped_events"), 0);

  // One track per worker, named "worker N".
  std::set<int> worker_tids;
  for (int i = 0; i < workers(); ++i) {
    bool found = false;
    for (const auto& [tid, name] : p.track_names) {
      if (name == "worker " + std::to_string(i)) {
        found = true;
        worker_tids.insert(tid);
      }
    }
    EXPECT_TRUE(found) << "no track for worker " << i;
  }

  // Fiber runs: on worker tracks, named after the fiber, ending in park/yield/exit; a park says
  // why and where.
  std::map<std::uint64_t, std::vector<std::pair<double, double>>> runs;  // fiber -> [start, end]
  std::set<std::string> park_reasons;
  bool ping_parked_here = false, ping_exit = false, pong_exit = false;
  for (const json& s : p.slices) {
    EXPECT_TRUE(worker_tids.count(s.at("tid").get<int>())) << s.dump();
    const std::uint64_t fiber = s.at("args").at("fiber");
    const std::string end = s.at("args").at("end");
    EXPECT_TRUE(end == "park" || end == "yield" || end == "exit") << s.dump();
    EXPECT_GE(s.at("dur").get<double>(), 0.0);
    runs[fiber].push_back({s.at("ts").get<double>(), s.at("ts").get<double>() + s.at("dur").get<double>()});
    if (fiber == ping_id) {
      EXPECT_EQ(s.at("name"), "ping #" + std::to_string(ping_id));
    }
    if (end == "park") {
      const std::string reason = s.at("args").at("reason");
      park_reasons.insert(reason);
      const std::string site = s.at("args").at("site");
      if (fiber == ping_id && site.find("trace_test.cpp") != std::string::npos) ping_parked_here = true;
    }
    if (end == "exit" && fiber == ping_id) ping_exit = true;
    if (end == "exit" && fiber == pong_id) pong_exit = true;
  }
  EXPECT_TRUE(park_reasons.count("chan receive")) << p.doc.dump().substr(0, 2000);
  EXPECT_TRUE(park_reasons.count("sleep"));
  EXPECT_TRUE(park_reasons.count("waitgroup wait"));
  EXPECT_TRUE(ping_parked_here) << "ping's parks should name this file as their site";
  EXPECT_TRUE(ping_exit);
  EXPECT_TRUE(pong_exit);
  // A fiber runs on one worker at a time: its runs never overlap.
  for (auto& [fiber, rs] : runs) {
    std::sort(rs.begin(), rs.end());
    for (std::size_t i = 1; i < rs.size(); ++i) {
      EXPECT_LE(rs[i - 1].second, rs[i].first + 0.002) << "fiber " << fiber << " ran twice at once";
    }
  }

  // Spawns of ping and pong, by the test's fiber.
  std::set<std::uint64_t> spawned;
  for (const json& s : p.spawns) spawned.insert(s.at("args").at("fiber").get<std::uint64_t>());
  EXPECT_TRUE(spawned.count(ping_id));
  EXPECT_TRUE(spawned.count(pong_id));

  // Wakes say whom, by whom and why: ping and pong wake each other through the channels, the
  // timers wake the sleepers (by 0: the scheduler).
  bool chan_wake_between_them = false, timer_wake = false;
  for (const json& w : p.wakes) {
    const std::uint64_t fiber = w.at("args").at("fiber"), by = w.at("args").at("by");
    const std::string reason = w.at("args").at("reason");
    if ((fiber == ping_id && by == pong_id) || (fiber == pong_id && by == ping_id)) {
      EXPECT_TRUE(reason == "chan send" || reason == "chan receive") << w.dump();
      chan_wake_between_them = true;
    }
    if (reason == "sleep" && by == 0) timer_wake = true;
  }
  EXPECT_TRUE(chan_wake_between_them);
  EXPECT_TRUE(timer_wake);

  // Flow arrows: every end has its start; there is one per spawn or wake that led to a run.
  std::set<std::uint64_t> starts;
  for (const json& s : p.flows_s) starts.insert(s.at("id").get<std::uint64_t>());
  for (const json& f : p.flows_f) EXPECT_TRUE(starts.count(f.at("id").get<std::uint64_t>())) << f.dump();
  EXPECT_GE(p.flows_f.size(), 40u);
  if (keep == nullptr || workers() != 2) std::remove(path.c_str());
}

FIBER_TEST(Trace, FullBuffersDropEventsAndSayHowMany) {
  const std::string path = temp_trace_path("overflow");
  trace::start(path, trace::Options{.events_per_worker = 64, .events_outside = 16});
  for (int i = 0; i < 500; ++i) this_fiber::yield();
  const trace::Summary sum = trace::stop();
  EXPECT_GT(sum.dropped, 0u);
  EXPECT_LE(sum.events, static_cast<std::size_t>(64 * workers() + 16));
  const json doc = read_json(path);
  EXPECT_EQ(doc.at("otherData").at("dropped_events").get<std::uint64_t>(), sum.dropped);
  std::size_t yields = 0;
  for (const json& e : doc.at("traceEvents")) {
    if (e.at("ph") == "X" && e.contains("args") && e.at("args").value("end", "") == "yield") ++yields;
  }
  EXPECT_GT(yields, 0u);
  std::remove(path.c_str());
}

FIBER_TEST(Trace, MisuseThrows) {
  EXPECT_THROW((void)trace::stop(), RuntimeError);
  EXPECT_THROW(trace::start("/nonexistent-dir/for/sure/trace.json"), RuntimeError);
  EXPECT_FALSE(trace::recording());
  const std::string path = temp_trace_path("twice");
  trace::start(path);
  EXPECT_THROW(trace::start(path), RuntimeError);
  (void)trace::stop();
  EXPECT_NO_THROW((void)read_json(path));
  std::remove(path.c_str());
}

// A trace may start before run() and span it: the main fiber's spawn is on the track of threads
// outside the runtime, and every worker gets its track. (A plain TEST: it calls run() itself.)
TEST(Trace, SpansARunCall) {
  const std::string path = temp_trace_path("span");
  trace::start(path);
  Options o;
  o.workers = 2;
  run(o, [] { (void)ping_pong(8); });
  const trace::Summary sum = trace::stop();
  EXPECT_EQ(sum.dropped, 0u);
  const Parsed p = parse_trace(path);
  std::set<std::string> names;
  for (const auto& [tid, name] : p.track_names) names.insert(name);
  EXPECT_TRUE(names.count("worker 0"));
  EXPECT_TRUE(names.count("worker 1"));
  EXPECT_TRUE(names.count("outside the runtime"));
  bool main_spawn = false;
  for (const json& s : p.spawns) {
    if (s.at("args").at("name").get<std::string>().rfind("main #", 0) == 0) main_spawn = true;
  }
  EXPECT_TRUE(main_spawn);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace spindle
