// search_aggregator end to end over loopback HTTP: backends are spindle::http::Servers whose
// handlers the test controls (answer at once, fail, hold until cancelled, wait for a release
// token). The deadline runs on a ManualClock, so "the deadline passed" is clock.advance(), and
// the test advances it only once the fast backends have reported (on_report): no timing races.
//
// Checked: the result holds exactly the answers of the backends that answered before the
// deadline (and their hits, nothing else); the stragglers' handlers see their request context
// end (the client closed the connection); a backend that never got a slot is skipped and never
// asked; the bound on requests in flight is reached and never exceeded, counted at the
// backends and by the aggregator; the caller's cancel reports canceled; failures and bad JSON
// are failed; the fusion, the JSON parsing and the demo backends.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/http/server.hpp>
#include <spindle/net/tcp.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "aggregator.hpp"
#include "demo.hpp"
#include "support/fiber_test.hpp"

namespace search_aggregator {
namespace {

using namespace std::chrono_literals;
using spindle::Chan;
using spindle::Context;
using spindle::patterns::ManualClock;
namespace http = spindle::http;

constexpr const char* kQuery = "green threads";

using Behaviour = std::function<http::Response(const std::string& name, const http::Request&, const Context&)>;

// Loopback backends with test-defined handlers. The destructor shuts them down gracefully.
class Fleet {
 public:
  ~Fleet() {
    for (auto& s : servers_) {
      auto [ctx, cancel] = spindle::with_timeout(spindle::background(), 5s);
      (void)s->shutdown(ctx);
    }
    wg_.wait();
  }
  void add(const std::string& name, Behaviour b) {
    http::ServerOptions so;
    so.log = [](std::string_view) {};
    auto server = std::make_unique<http::Server>(
        [name, b = std::move(b)](const http::Request& req, const Context& ctx) { return b(name, req, ctx); }, so);
    auto [ln, err] = spindle::net::listen("127.0.0.1", 0);
    ASSERT_FALSE(err) << err.message();
    backends_.push_back({name, "http://127.0.0.1:" + std::to_string(ln.port()) + "/search"});
    wg_.go([s = server.get(), ln] { (void)s->serve(ln); });
    servers_.push_back(std::move(server));
  }
  [[nodiscard]] const std::vector<Backend>& backends() const { return backends_; }

 private:
  std::vector<std::unique_ptr<http::Server>> servers_;
  std::vector<Backend> backends_;
  spindle::WaitGroup wg_;
};

http::Response results_for(const std::string& name) {
  http::Response r;
  r.headers.set("Content-Type", "application/json");
  r.body = demo_results_json(name, kQuery);
  return r;
}

// The URLs a backend answers with (what its hits must contribute to the merge).
std::set<std::string> urls_of(const std::string& name) {
  std::vector<Hit> hits;
  std::string err;
  EXPECT_TRUE(parse_hits(demo_results_json(name, kQuery), hits, err)) << err;
  std::set<std::string> out;
  for (const auto& h : hits) out.insert(h.url);
  return out;
}

// Answers at once; counts requests.
Behaviour fast(std::shared_ptr<std::atomic<int>> requests = nullptr) {
  return [requests](const std::string& name, const http::Request& req, const Context&) {
    if (requests) requests->fetch_add(1);
    EXPECT_EQ(req.query(), "q=green%20threads");
    return results_for(name);
  };
}

// Holds the request until its context ends (the client went away), then reports the name on
// `cancelled`; a 10 s bound turns a missed cancellation into a failure instead of a hang.
Behaviour hold(Chan<std::string> entered, Chan<std::string> cancelled) {
  return [entered, cancelled](const std::string& name, const http::Request&, const Context& ctx) {
    entered.send(name);
    if (spindle::this_fiber::sleep_for(ctx, 10s)) {
      cancelled.send(name);
    } else {
      ADD_FAILURE() << name << ": the request context was never cancelled";
    }
    return http::Response::text(503, "late\n");
  };
}

template <class T>
T recv_bounded(const Chan<T>& ch) {
  auto [guard, cancel] = spindle::with_timeout(spindle::background(), 10s);
  auto r = ch.recv(guard);
  EXPECT_TRUE(r.value.has_value()) << "timed out waiting on a test channel";
  return r.value.value_or(T{});
}

std::set<std::string> hit_backends(const SearchResult& r) {
  std::set<std::string> out;
  for (const auto& h : r.hits)
    for (const auto& b : h.backends) out.insert(b);
  return out;
}

FIBER_TEST(SearchAggregator, TheDeadlineKeepsExactlyWhatArrivedAndCancelsTheStragglers) {
  ManualClock clock;
  Chan<std::string> entered(16), cancelled(16);
  Fleet fleet;
  for (const char* n : {"fast1", "fast2", "fast3"}) fleet.add(n, fast());
  fleet.add("broken", [](const std::string&, const http::Request&, const Context&) {
    return http::Response::text(500, "boom\n");
  });
  fleet.add("slow1", hold(entered, cancelled));
  fleet.add("slow2", hold(entered, cancelled));

  Chan<BackendReport> reports(16);
  Aggregator agg(fleet.backends(), {.deadline = 100ms, .max_concurrency = 6, .top_k = 0, .clock = &clock,
                                    .on_report = [reports](const BackendReport& r) { reports.send(r); }});
  SearchResult result;
  spindle::WaitGroup wg;
  wg.go([&] { result = agg.search(spindle::background(), kQuery); });

  // Everyone who can answer has answered, the stragglers are in their handlers: now the deadline.
  std::multiset<std::string> early;
  for (int i = 0; i < 4; ++i) early.insert(recv_bounded(reports).name);
  EXPECT_EQ(early, (std::multiset<std::string>{"broken", "fast1", "fast2", "fast3"}));
  std::multiset<std::string> holding{recv_bounded(entered), recv_bounded(entered)};
  EXPECT_EQ(holding, (std::multiset<std::string>{"slow1", "slow2"}));
  EXPECT_FALSE(reports.try_recv().value.has_value());  // nothing else has finished
  clock.advance(100ms);

  // Each straggler's handler sees its request context end: the client closed the connection.
  std::multiset<std::string> gone{recv_bounded(cancelled), recv_bounded(cancelled)};
  EXPECT_EQ(gone, (std::multiset<std::string>{"slow1", "slow2"}));
  wg.wait();

  EXPECT_EQ(result.count(Outcome::answered), 3u);
  EXPECT_EQ(result.count(Outcome::failed), 1u);
  EXPECT_EQ(result.count(Outcome::timed_out), 2u);
  for (const BackendReport& b : result.backends) {
    if (b.name.starts_with("fast")) {
      EXPECT_EQ(b.outcome, Outcome::answered) << b.name;
      EXPECT_EQ(b.hits, 5u);
    }
    if (b.name == "broken") {
      EXPECT_EQ(b.detail, "HTTP 500");
    }
    if (b.name.starts_with("slow")) {
      EXPECT_EQ(b.outcome, Outcome::timed_out) << b.name;
    }
  }
  // Exactly the fast backends' hits: every URL they returned, nothing else.
  EXPECT_EQ(hit_backends(result), (std::set<std::string>{"fast1", "fast2", "fast3"}));
  std::set<std::string> want, got;
  for (const char* n : {"fast1", "fast2", "fast3"}) want.merge(urls_of(n));
  for (const auto& h : result.hits) got.insert(h.url);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(std::is_sorted(result.hits.begin(), result.hits.end(),
                             [](const Hit& a, const Hit& b) { return a.score > b.score; }));
}

FIBER_TEST(SearchAggregator, ConcurrencyReachesTheBoundAndNeverExceedsIt) {
  constexpr int kBackends = 8, kLimit = 3;
  auto in_flight = std::make_shared<std::atomic<int>>(0);
  auto max_seen = std::make_shared<std::atomic<int>>(0);
  Chan<std::string> entered(kBackends), left(kBackends);
  Chan<int> release(0);
  Fleet fleet;
  for (int i = 0; i < kBackends; ++i) {
    fleet.add("b" + std::to_string(i), [=](const std::string& name, const http::Request&, const Context& ctx) {
      const int now = in_flight->fetch_add(1) + 1;
      for (int m = max_seen->load(); now > m && !max_seen->compare_exchange_weak(m, now);) {
      }
      entered.send(name);
      const bool released = release.recv(ctx).value.has_value();
      EXPECT_TRUE(released);
      in_flight->fetch_sub(1);  // before the response: the next request can only start after it
      left.send(name);
      return results_for(name);
    });
  }
  Aggregator agg(fleet.backends(), {.deadline = Duration::zero(), .max_concurrency = kLimit});
  SearchResult result;
  spindle::WaitGroup wg;
  wg.go([&] { result = agg.search(spindle::background(), kQuery); });

  // Release one request at a time and wait until it has left its handler; before each release,
  // exactly min(limit, remaining) are in their handlers (a new one can only enter after a
  // released one's response reached the client). A request beyond the bound would show in
  // in_flight (it counts on entry) and in max_seen.
  int entries = 0;
  for (int released = 0; released < kBackends; ++released) {
    const int expect = std::min(kLimit, kBackends - released);
    while (entries - released < expect) {
      (void)recv_bounded(entered);
      ++entries;
    }
    EXPECT_EQ(in_flight->load(), expect);
    release.send(1);
    (void)recv_bounded(left);
  }
  wg.wait();
  EXPECT_EQ(entries, kBackends);
  EXPECT_EQ(max_seen->load(), kLimit);
  EXPECT_EQ(result.max_in_flight, kLimit);
  EXPECT_EQ(result.count(Outcome::answered), static_cast<std::size_t>(kBackends));
  EXPECT_EQ(result.hits.size(), 8u);  // top_k 10, but the pool has 8 documents
}

FIBER_TEST(SearchAggregator, ABackendWithoutASlotBeforeTheDeadlineIsSkipped) {
  ManualClock clock;
  Chan<std::string> entered(4), cancelled(4);
  auto asked = std::make_shared<std::atomic<int>>(0);
  Fleet fleet;
  fleet.add("slow", hold(entered, cancelled));
  fleet.add("fast", fast(asked));
  Aggregator agg(fleet.backends(), {.deadline = 50ms, .max_concurrency = 1, .clock = &clock});
  SearchResult result;
  spindle::WaitGroup wg;
  wg.go([&] { result = agg.search(spindle::background(), kQuery); });
  EXPECT_EQ(recv_bounded(entered), "slow");
  clock.advance(50ms);
  EXPECT_EQ(recv_bounded(cancelled), "slow");
  wg.wait();
  EXPECT_EQ(result.backends[0].outcome, Outcome::timed_out);
  EXPECT_EQ(result.backends[1].outcome, Outcome::skipped);
  EXPECT_EQ(asked->load(), 0);  // never asked
  EXPECT_TRUE(result.hits.empty());
  EXPECT_EQ(result.max_in_flight, 1);
}

FIBER_TEST(SearchAggregator, TheCallersCancelReportsCanceled) {
  Chan<std::string> entered(4), cancelled(4);
  Fleet fleet;
  fleet.add("a", hold(entered, cancelled));
  fleet.add("b", hold(entered, cancelled));
  Aggregator agg(fleet.backends(), {.deadline = 1h});
  auto [ctx, cancel] = spindle::with_cancel(spindle::background());
  SearchResult result;
  spindle::WaitGroup wg;
  wg.go([&, ctx = ctx] { result = agg.search(ctx, kQuery); });
  (void)recv_bounded(entered);
  (void)recv_bounded(entered);
  cancel();
  (void)recv_bounded(cancelled);
  (void)recv_bounded(cancelled);
  wg.wait();
  EXPECT_EQ(result.count(Outcome::canceled), 2u);
}

// The system clock's deadline (with_timeout): the straggler is timed out; no speed is asserted.
FIBER_TEST(SearchAggregator, SystemClockDeadline) {
  Chan<std::string> entered(4), cancelled(4);
  Fleet fleet;
  fleet.add("slow", hold(entered, cancelled));
  Aggregator agg(fleet.backends(), {.deadline = 30ms});
  const SearchResult result = agg.search(spindle::background(), kQuery);
  EXPECT_EQ(result.count(Outcome::timed_out), 1u);
  EXPECT_GE(result.took, 30ms);
  EXPECT_EQ(recv_bounded(cancelled), "slow");
}

FIBER_TEST(SearchAggregator, BadAnswersAreFailures) {
  Fleet fleet;
  fleet.add("html", [](const std::string&, const http::Request&, const Context&) {
    return http::Response::text(200, "<html>");
  });
  fleet.add("shape", [](const std::string&, const http::Request&, const Context&) {
    return http::Response::text(200, R"({"hits": []})");
  });
  fleet.add("ok", fast());
  Aggregator agg(fleet.backends(), {.deadline = Duration::zero()});
  const SearchResult r = agg.search(spindle::background(), kQuery);
  EXPECT_EQ(r.backends[0].outcome, Outcome::failed);
  EXPECT_EQ(r.backends[0].detail, "bad JSON: not JSON");
  EXPECT_EQ(r.backends[1].outcome, Outcome::failed);
  EXPECT_EQ(r.backends[1].detail, "bad JSON: no \"results\" array");
  EXPECT_EQ(r.backends[2].outcome, Outcome::answered);
  EXPECT_EQ(hit_backends(r), (std::set<std::string>{"ok"}));
}

FIBER_TEST(SearchAggregator, DemoBackendsServeTheProtocol) {
  DemoBackends demo;
  std::vector<DemoSpec> specs;
  std::string err;
  ASSERT_TRUE(parse_demo_specs("a:0ms,b:fail,c:garbage", specs, err)) << err;
  ASSERT_FALSE(demo.start(specs));
  Aggregator agg(demo.backends(), {.deadline = Duration::zero()});
  const SearchResult r = agg.search(spindle::background(), kQuery);
  EXPECT_EQ(r.backends[0].outcome, Outcome::answered);
  EXPECT_EQ(r.backends[1].outcome, Outcome::failed);
  EXPECT_EQ(r.backends[2].outcome, Outcome::failed);
  EXPECT_EQ(r.hits.size(), 5u);
  demo.stop();
  EXPECT_EQ(demo.requests(), 3);
  EXPECT_EQ(demo.completed(), 3);
  EXPECT_EQ(demo.cancelled(), 0);
}

TEST(SearchAggregatorMerge, ReciprocalRankFusion) {
  auto hit = [](std::string url) { return Hit{.title = "t " + url, .url = std::move(url)}; };
  const std::vector<std::pair<std::string, std::vector<Hit>>> lists = {
      {"x", {hit("u1"), hit("u2"), hit("u3")}},
      {"y", {hit("u2"), hit("u4"), hit("u2")}},  // u2 twice: counted once, at rank 1
  };
  const std::vector<Hit> out = fuse(lists, 0);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].url, "u2");  // 1/62 + 1/61
  EXPECT_DOUBLE_EQ(out[0].score, 1.0 / 62 + 1.0 / 61);
  EXPECT_EQ(out[0].backends, (std::vector<std::string>{"y", "x"}));  // best rank first
  EXPECT_EQ(out[1].url, "u1");  // 1/61
  EXPECT_EQ(out[2].url, "u4");  // 1/62, ties with nothing; u3 is 1/63
  EXPECT_EQ(out[3].url, "u3");
  EXPECT_EQ(fuse(lists, 2).size(), 2u);
  std::vector<Hit> hits;
  std::string err;
  EXPECT_FALSE(parse_hits(R"({"results":[{"title":"no url"}]})", hits, err));
  EXPECT_TRUE(parse_hits(R"({"results":[]})", hits, err));
  EXPECT_EQ(url_encode("a b/ü"), "a%20b%2F%C3%BC");
  std::vector<DemoSpec> specs;
  EXPECT_FALSE(parse_demo_specs("a:soon", specs, err));
  EXPECT_TRUE(parse_demo_specs("a:10ms:fail", specs, err));
  EXPECT_EQ(specs[0].latency, 10ms);
  EXPECT_EQ(specs[0].mode, DemoMode::fail);
}

}  // namespace
}  // namespace search_aggregator
