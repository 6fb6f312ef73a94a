// Shutdown: trigger() cancels the context with its cause (from a fiber or a plain thread, as a
// signal-watching thread would), trigger_on any Receiver, hooks run phase by phase under one
// deadline on a ManualClock, and the report says exactly which hooks finished, failed, timed
// out or were skipped.
#include <atomic>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/mutex.hpp>
#include <spindle/patterns/shutdown.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

FIBER_TEST(Shutdown, TriggerCancelsTheContextWithItsCause) {
  Shutdown sd;
  EXPECT_FALSE(sd.triggered());
  const std::error_code kSigterm = make_error_code(std::errc::interrupted);
  sd.trigger(kSigterm);
  sd.trigger();  // idempotent: the first cause wins
  EXPECT_TRUE(sd.triggered());
  EXPECT_EQ(cause(sd.context()), kSigterm);
  const ShutdownReport r = sd.run(1s);
  EXPECT_EQ(r.cause, kSigterm);
  EXPECT_TRUE(r.hooks.empty());
  EXPECT_TRUE(r.all_ok());
}

FIBER_TEST(Shutdown, PhasesRunInOrderHooksWithinAPhaseConcurrently) {
  ManualClock clock;
  Shutdown sd(background(), &clock);
  Mutex mu;
  std::vector<std::string> log;
  auto note = [&](std::string s) {
    std::lock_guard lock(mu);
    log.push_back(std::move(s));
  };
  // Phase 0's two hooks rendezvous: they can only finish if they run at the same time.
  Chan<int> a_to_b(0);
  sd.on_shutdown("db", [&](const Context&) { note("db"); }, 1);
  sd.on_shutdown("http", [&](const Context&) {
    a_to_b.send(1);
    note("http");
  });
  sd.on_shutdown("grpc", [&](const Context&) -> std::error_code {
    (void)a_to_b.recv();
    note("grpc");
    return {};
  });
  sd.on_shutdown("flush-logs", [&](const Context&) { note("flush"); }, 2);
  const ShutdownReport r = sd.run(10s);
  EXPECT_TRUE(r.all_ok());
  ASSERT_EQ(r.hooks.size(), 4u);
  EXPECT_EQ(r.hooks[0].name, "db");
  EXPECT_EQ(r.hooks[0].phase, 1);
  ASSERT_EQ(log.size(), 4u);
  EXPECT_EQ(log[2], "db");     // phase 1 after both of phase 0
  EXPECT_EQ(log[3], "flush");  // phase 2 last
  EXPECT_EQ(r.cause, spindle::errc::canceled);  // run() triggered it
  EXPECT_TRUE(sd.context().err());
  EXPECT_THROW(sd.on_shutdown("late", [](const Context&) {}), ConfigError);
  const ShutdownReport again = sd.run(10s);  // once: the same report
  EXPECT_EQ(again.hooks.size(), 4u);
}

FIBER_TEST(Shutdown, ReportsTimedOutFailedAndSkippedHooks) {
  ManualClock clock;
  Shutdown sd(background(), &clock);
  std::atomic<bool> straggler_saw_cancel{false};
  std::atomic<int> entered{0};  // phase-0 hooks that have started
  sd.on_shutdown("quick", [&](const Context&) { ++entered; });
  sd.on_shutdown("stuck", [&](const Context& ctx) {
    ++entered;
    (void)ctx.done().recv();  // never finishes on its own; honours the deadline
    straggler_saw_cancel = timed_out(ctx);
  });
  sd.on_shutdown("broken", [&](const Context&) {
    ++entered;
    return make_error_code(std::errc::io_error);
  });
  sd.on_shutdown("throws", [&](const Context&) -> std::error_code {
    ++entered;
    throw std::runtime_error("disk gone");
  });
  sd.on_shutdown("later", [](const Context&) {}, 1);
  WaitGroup wg;
  ShutdownReport r;
  wg.go([&] { r = sd.run(5s); });
  // Let the four phase-0 hooks start and the three quick ones finish (their fibers gone, their
  // reports sent) before the deadline passes: only run() and the stuck hook are left.
  while (entered.load() < 4) spindle::this_fiber::yield();
  ASSERT_TRUE(spindle::testing::wait_other_fibers_at_most(2));
  clock.advance(5s);
  wg.wait();
  ASSERT_EQ(r.hooks.size(), 5u);
  EXPECT_EQ(r.hooks[0].status, HookStatus::ok);
  EXPECT_EQ(r.hooks[1].status, HookStatus::timed_out);
  EXPECT_EQ(r.hooks[2].status, HookStatus::failed);
  EXPECT_EQ(r.hooks[2].error, std::errc::io_error);
  EXPECT_EQ(r.hooks[3].status, HookStatus::failed);
  EXPECT_EQ(r.hooks[3].error, errc::hook_failed);
  EXPECT_EQ(r.hooks[3].what, "disk gone");
  EXPECT_EQ(r.hooks[4].status, HookStatus::skipped);  // its phase never started
  EXPECT_EQ(r.unfinished(), (std::vector<std::string>{"stuck", "broken", "throws", "later"}));
  EXPECT_FALSE(r.all_ok());
  // The straggler was left with its context cancelled by the deadline; it ends on its own.
  EXPECT_TRUE(spindle::testing::wait_other_fibers_at_most(0));
  EXPECT_TRUE(straggler_saw_cancel.load());
}

FIBER_TEST(Shutdown, WaitAndRunWithAThreadAsTheSignalSource) {
  Shutdown sd;
  std::atomic<int> ran{0};
  sd.on_shutdown("h", [&](const Context&) { ++ran; });
  // What a sigwait() thread would do: trigger from outside the runtime.
  std::thread signaller([&] { sd.trigger(make_error_code(std::errc::interrupted)); });
  const ShutdownReport r = sd.wait_and_run(1s);
  signaller.join();
  EXPECT_EQ(r.cause, std::errc::interrupted);
  EXPECT_EQ(ran.load(), 1);
  EXPECT_TRUE(r.all_ok());
}

FIBER_TEST(Shutdown, TriggerOnAnyReceiver) {
  {
    Shutdown sd;
    Chan<int> sig(1);
    sd.trigger_on(sig);
    EXPECT_FALSE(sd.triggered());
    sig.send(15);
    (void)sd.context().done().recv();
    EXPECT_TRUE(sd.triggered());
  }
  {
    Shutdown sd;
    Chan<std::string> admin(0);
    sd.trigger_on(Receiver<std::string>(admin));
    admin.close();  // a close triggers too
    (void)sd.context().done().recv();
  }
  {
    Shutdown sd;
    Chan<int> never(0);
    sd.trigger_on(never);
  }  // destroyed untriggered: the watcher still ends (the fixture checks for leaks)
}

FIBER_TEST(Shutdown, ParentCancellationTriggers) {
  auto [parent, cancel] = with_cancel(background());
  Shutdown sd(parent);
  cancel();
  const ShutdownReport r = sd.wait_and_run(1s);
  EXPECT_EQ(r.cause, spindle::errc::canceled);
}

FIBER_TEST(Shutdown, BadUseThrows) {
  Shutdown sd;
  EXPECT_THROW(sd.on_shutdown("null", Shutdown::Hook{}), ConfigError);
  EXPECT_THROW((void)sd.run(-1s), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
