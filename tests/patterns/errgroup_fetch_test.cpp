// The seeds' "error group with cancellation" (fetchAllWithCancellation / fetchAllLimited),
// written over spindle::ErrGroup exactly as the Go reads: every fetch in its own fiber, the
// first error cancels the others' context, responses land in their own slots. This file is the
// example patterns/README.md points to; map_bounded (bounded.hpp) is the packaged form.
#include <atomic>
#include <map>
#include <string>
#include <vector>

#include <spindle/errgroup.hpp>
#include <spindle/patterns/clock.hpp>
#include <spindle/this_fiber.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

// A fake network: each URL answers, fails, or hangs until its context is cancelled.
struct FakeWeb {
  std::map<std::string, std::string> pages;
  std::map<std::string, std::error_code> errors;
  std::atomic<int> cancelled{0};

  std::error_code fetch(const Context& ctx, const std::string& url, std::string& out) {
    if (auto it = errors.find(url); it != errors.end()) return it->second;
    if (auto it = pages.find(url); it != pages.end()) {
      out = it->second;
      return {};
    }
    // Hangs like a slow server, until the group cancels it.
    const std::error_code ec = this_fiber::sleep_for(ctx, 1h);
    ++cancelled;
    return ec;
  }
};

// Go:
//   g, ctx := errgroup.WithContext(ctx)
//   responses := make([]Response, len(urls))
//   for i, url := range urls { g.Go(func() error { ...; responses[i] = resp; return nil }) }
//   if err := g.Wait(); err != nil { return nil, err }
//   return responses, nil
std::error_code fetch_all(const Context& parent, FakeWeb& web, const std::vector<std::string>& urls,
                          std::vector<std::string>& responses, int limit = -1) {
  auto [g, ctx] = ErrGroup::with_context(parent);
  g.set_limit(limit);  // fetchAllLimited's SetLimit(maxParallel); -1: no limit
  responses.assign(urls.size(), {});
  for (std::size_t i = 0; i < urls.size(); ++i) {
    g.go([&, i, ctx = ctx]() -> std::error_code { return web.fetch(ctx, urls[i], responses[i]); });
  }
  return g.wait();
}

FIBER_TEST(ErrGroupFetch, AllSucceed) {
  FakeWeb web;
  std::vector<std::string> urls;
  for (int i = 0; i < 50; ++i) {
    urls.push_back("u" + std::to_string(i));
    web.pages[urls.back()] = "page" + std::to_string(i);
  }
  std::vector<std::string> got;
  EXPECT_FALSE(fetch_all(background(), web, urls, got));
  ASSERT_EQ(got.size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], "page" + std::to_string(i));
  EXPECT_FALSE(fetch_all(background(), web, urls, got, 3));
  EXPECT_EQ(got[49], "page49");
}

FIBER_TEST(ErrGroupFetch, FirstErrorCancelsTheHangingOnes) {
  FakeWeb web;
  web.pages["ok"] = "fine";
  web.errors["bad"] = make_error_code(std::errc::connection_refused);
  const std::vector<std::string> urls{"hang1", "ok", "hang2", "bad", "hang3"};
  std::vector<std::string> got;
  EXPECT_EQ(fetch_all(background(), web, urls, got), std::errc::connection_refused);
  EXPECT_EQ(web.cancelled.load(), 3);  // every hanging fetch was released by the cancellation
}

FIBER_TEST(ErrGroupFetch, CallerDeadlineCancelsEverything) {
  FakeWeb web;
  const std::vector<std::string> urls{"hang1", "hang2"};
  std::vector<std::string> got;
  ClockContext tc = timeout_context(background(), 5ms, system_clock());
  EXPECT_EQ(fetch_all(tc.ctx, web, urls, got), spindle::errc::deadline_exceeded);
  EXPECT_EQ(web.cancelled.load(), 2);
}

}  // namespace
}  // namespace spindle::patterns
