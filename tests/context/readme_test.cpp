// The seed programs' context and errgroup patterns written with spindle, exactly as shown in
// runtime/src/context/README-snippet.md (keep the two in sync: this file proves they compile
// and behave). Sources: operationWithTimeout (seeds/000), fetchAll / fetchAllLimited
// (seeds/003).
#include <atomic>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/errgroup.hpp>
#include <spindle/select.hpp>

#include "context/helpers.hpp"
#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace readme {

struct Result {
  std::string data;
};

// --- snippet: operationWithTimeout --------------------------------------------------------
struct Outcome {
  Result result;
  std::error_code err;
};

Outcome operation_with_timeout(spindle::Duration timeout,
                               std::function<Outcome(const spindle::Context&)> operation) {
  auto [ctx, cancel] = spindle::with_timeout(spindle::background(), timeout);
  // `cancel` runs when it goes out of scope: Go's `defer cancel()`, impossible to forget.

  spindle::Chan<Result> result_ch(1);
  spindle::Chan<std::error_code> err_ch(1);

  spindle::go([=] {
    auto [result, err] = operation(ctx);
    if (err) {
      err_ch.send(err);
      return;
    }
    result_ch.send(std::move(result));
  });

  return spindle::select(
      spindle::case_recv(result_ch, [](std::optional<Result> r) { return Outcome{std::move(r).value(), {}}; }),
      spindle::case_recv(err_ch, [](std::optional<std::error_code> e) { return Outcome{{}, e.value()}; }),
      spindle::case_recv(ctx.done(), [&] { return Outcome{{}, ctx.err()}; }));
}
// --- end snippet ----------------------------------------------------------------------------

// A stand-in for an HTTP fetch: takes `latency`, honours ctx, fails for "bad" URLs.
std::pair<std::string, std::error_code> fetch_url(const spindle::Context& ctx,
                                                  const std::string& url) {
  if (auto err = spindle::this_fiber::sleep_for(ctx, url == "slow" ? 1h : 1ms)) return {{}, err};
  if (url == "bad") return {{}, std::make_error_code(std::errc::host_unreachable)};
  return {"<" + url + ">", {}};
}

// --- snippet: fetchAll ----------------------------------------------------------------------
std::pair<std::vector<std::string>, std::error_code> fetch_all(const std::vector<std::string>& urls) {
  auto [g, ctx] = spindle::ErrGroup::with_context(spindle::background());
  std::vector<std::string> results(urls.size());

  for (std::size_t i = 0; i < urls.size(); ++i) {
    g.go([&, i]() -> std::error_code {
      // The context is cancelled if any fiber fails.
      auto [data, err] = fetch_url(ctx, urls[i]);
      if (err) return err;
      results[i] = std::move(data);
      return {};
    });
  }

  if (auto err = g.wait()) return {{}, err};
  return {std::move(results), {}};
}

// With a parallelism limit.
std::pair<std::vector<std::string>, std::error_code> fetch_all_limited(
    const std::vector<std::string>& urls, int max_parallel) {
  auto [g, ctx] = spindle::ErrGroup::with_context(spindle::background());
  g.set_limit(max_parallel);

  std::vector<std::string> results(urls.size());

  for (std::size_t i = 0; i < urls.size(); ++i) {
    g.go([&, i]() -> std::error_code {
      auto [data, err] = fetch_url(ctx, urls[i]);
      if (err) return err;
      results[i] = std::move(data);
      return {};
    });
  }

  auto err = g.wait();
  return {std::move(results), err};
}
// --- end snippet ----------------------------------------------------------------------------

}  // namespace readme

namespace spindle {
namespace {

FIBER_TEST(Readme, OperationWithTimeout) {
  auto ok = readme::operation_with_timeout(1h, [](const Context&) {
    return readme::Outcome{{"done"}, {}};
  });
  EXPECT_FALSE(ok.err);
  EXPECT_EQ(ok.result.data, "done");

  auto failed = readme::operation_with_timeout(1h, [](const Context&) {
    return readme::Outcome{{}, std::make_error_code(std::errc::io_error)};
  });
  EXPECT_EQ(failed.err, std::make_error_code(std::errc::io_error));

  auto slow = readme::operation_with_timeout(2ms, [](const Context& ctx) {
    return readme::Outcome{{}, this_fiber::sleep_for(ctx, 1h)};  // stops when ctx is done
  });
  EXPECT_EQ(slow.err, errc::deadline_exceeded);
  EXPECT_TRUE(slow.err == std::errc::timed_out);
}

FIBER_TEST(Readme, FetchAll) {
  auto [ok, err] = readme::fetch_all({"a", "b", "c"});
  EXPECT_FALSE(err);
  EXPECT_EQ(ok, (std::vector<std::string>{"<a>", "<b>", "<c>"}));

  // One failure cancels the slow fetches: this returns promptly instead of after an hour.
  auto [none, err2] = readme::fetch_all({"a", "slow", "bad", "slow"});
  EXPECT_EQ(err2, std::make_error_code(std::errc::host_unreachable));
  EXPECT_TRUE(none.empty());

  auto [lim, err3] = readme::fetch_all_limited({"a", "b", "c", "d", "e"}, 2);
  EXPECT_FALSE(err3);
  EXPECT_EQ(lim.back(), "<e>");
}

}  // namespace
}  // namespace spindle
