// supervise(): pulses keep a worker alive, a missed pulse cancels it and starts a new one,
// failures restart it, max_restarts ends it, ctx cancellation and exceptions stop it, and every
// incarnation is joined before supervise returns. Driven by a ManualClock and the event stream.
#include <atomic>
#include <stdexcept>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/select.hpp>
#include <spindle/patterns/heartbeat.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

using namespace std::chrono_literals;

namespace spindle::patterns {
namespace {

using K = SupervisorEventKind;

struct Harness {
  ManualClock clock;
  Chan<SupervisorEvent> events{1024};
  SupervisorSettings settings(Duration timeout, int max_restarts = -1) {
    return {.timeout = timeout,
            .max_restarts = max_restarts,
            .clock = &clock,
            .on_event = [ch = events](const SupervisorEvent& e) { ch.send(e); }};
  }
  SupervisorEvent next() { return *events.recv(); }
};

FIBER_TEST(Supervisor, PulsesKeepTheWorkerAlive) {
  Harness h;
  Chan<int> cmd(0);  // 1: beat, 0: finish
  WaitGroup wg;
  std::error_code result = make_error_code(std::errc::io_error);
  wg.go([&] {
    result = supervise(background(), h.settings(10s), [cmd](const Context&, Heartbeat& hb) -> std::error_code {
      while (auto c = cmd.recv()) {
        if (*c == 0) return {};
        hb.beat();
      }
      return {};
    });
  });
  EXPECT_EQ(h.next().kind, K::started);
  for (int i = 0; i < 20; ++i) {
    h.clock.block_until_pending(1);
    h.clock.advance(9s);  // just inside the timeout...
    cmd.send(1);          // ...a pulse resets it
    const SupervisorEvent e = h.next();
    EXPECT_EQ(e.kind, K::pulse);
    EXPECT_EQ(e.incarnation, 1);
  }
  cmd.send(0);
  wg.wait();
  EXPECT_FALSE(result);
  EXPECT_FALSE(h.events.try_recv().ok());  // no restart ever happened
}

FIBER_TEST(Supervisor, MissedPulsesRestartTheWorker) {
  Harness h;
  std::atomic<int> cancelled{0};
  Chan<int> release(0);  // closed by the test once incarnation 3 has started
  WaitGroup wg;
  std::error_code result;
  wg.go([&] {
    result = supervise(background(), h.settings(5s), [&](const Context& ctx, Heartbeat&) -> std::error_code {
      // Never pulses; returns when released (success) or cancelled (an abandoned incarnation).
      const Receiver<std::monostate> done = ctx.done();
      Select<2> sel;
      (void)sel.recv(done);
      (void)sel.recv(release);
      (void)sel.wait();
      if (ctx.err()) {
        ++cancelled;
        return ctx.err();
      }
      return {};
    });
  });
  EXPECT_EQ(h.next().kind, K::started);
  for (int inc = 1; inc <= 2; ++inc) {
    h.clock.block_until_pending(1);
    h.clock.advance(4999ms);
    EXPECT_EQ(h.clock.pending(), 1u);  // not yet
    h.clock.advance(1ms);
    SupervisorEvent e = h.next();
    EXPECT_EQ(e.kind, K::missed);
    EXPECT_EQ(e.incarnation, inc);
    e = h.next();
    EXPECT_EQ(e.kind, K::started);
    EXPECT_EQ(e.incarnation, inc + 1);
  }
  release.close();
  wg.wait();
  EXPECT_FALSE(result);
  EXPECT_EQ(cancelled.load(), 2);
}

FIBER_TEST(Supervisor, MaxRestartsEndsSupervision) {
  Harness h;
  WaitGroup wg;
  std::error_code result;
  std::atomic<int> runs{0};
  wg.go([&] {
    result = supervise(background(), h.settings(1s, 2), [&](const Context& ctx, Heartbeat&) {
      ++runs;
      (void)ctx.done().recv();  // never pulses
    });
  });
  for (int inc = 1; inc <= 3; ++inc) {
    EXPECT_EQ(h.next().kind, K::started);
    h.clock.block_until_pending(1);
    h.clock.advance(1s);
    EXPECT_EQ(h.next().kind, K::missed);
  }
  wg.wait();
  EXPECT_EQ(result, errc::too_many_restarts);
  EXPECT_EQ(runs.load(), 3);  // and all three were joined (the fixture checks for leaks)
}

FIBER_TEST(Supervisor, FailuresRestartWithBackoff) {
  Harness h;
  SupervisorSettings st = h.settings(1h, 5);
  st.restart_backoff = 2s;
  std::atomic<int> runs{0};
  const std::error_code kFail = make_error_code(std::errc::io_error);
  WaitGroup wg;
  std::error_code result;
  wg.go([&] {
    result = supervise(background(), st, [&](const Context&, Heartbeat&) -> std::error_code {
      return ++runs < 3 ? kFail : std::error_code{};
    });
  });
  EXPECT_EQ(h.next().kind, K::started);
  SupervisorEvent e = h.next();
  EXPECT_EQ(e.kind, K::failed);
  EXPECT_EQ(e.error, kFail);
  // The supervisor now waits out the backoff: its 2 s timer.
  h.clock.block_until_pending(1);
  h.clock.advance(2s);
  EXPECT_EQ(h.next().kind, K::started);
  EXPECT_EQ(h.next().kind, K::failed);
  h.clock.block_until_pending(1);
  h.clock.advance(2s);
  EXPECT_EQ(h.next().kind, K::started);
  wg.wait();
  EXPECT_FALSE(result);
  EXPECT_EQ(runs.load(), 3);

  // Without restart_on_error the first failure is the result.
  SupervisorSettings no = h.settings(1h);
  no.restart_on_error = false;
  EXPECT_EQ(supervise(background(), no, [&](const Context&, Heartbeat&) { return kFail; }), kFail);
}

FIBER_TEST(Supervisor, CancelAndException) {
  Harness h;
  auto [ctx, cancel] = with_cancel(background());
  WaitGroup wg;
  std::error_code result;
  wg.go([&, ctx = ctx] {
    result = supervise(ctx, h.settings(1h), [](const Context& c, Heartbeat&) { (void)c.done().recv(); });
  });
  EXPECT_EQ(h.next().kind, K::started);
  cancel();
  wg.wait();
  EXPECT_EQ(result, spindle::errc::canceled);

  EXPECT_THROW((void)supervise(background(), h.settings(1h), [](const Context&, Heartbeat&) -> std::error_code {
                 throw std::runtime_error("worker blew up");
               }),
               std::runtime_error);
  EXPECT_THROW((void)supervise(background(), {.timeout = 0s}, [](const Context&, Heartbeat&) {}), ConfigError);
}

}  // namespace
}  // namespace spindle::patterns
