// Signals as channel values: delivery, several subscribers, stop, restored dispositions, misuse,
// and the deadlock detector counting a fiber that waits for a signal.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/error.hpp>
#include <spindle/errors.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>

#include "support/fiber_test.hpp"
#include "support/scale.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

// Receives one signal value, waiting at most `limit`. Under TSan a signal handler runs only
// when the thread the kernel picked next enters a function TSan intercepts, and an idle worker
// sleeps in a raw futex or epoll system call that TSan does not see: so wake up every few
// milliseconds (each wake-up passes through intercepted calls) instead of parking once.
RecvResult<int> recv_signal(const Receiver<int>& ch, Duration limit = 10s) {
  const TimePoint until = Clock::now() + limit;
  for (;;) {
    auto r = ch.recv_for(5ms);
    if (r.status != ChanStatus::timeout || Clock::now() >= until) return r;
  }
}

FIBER_TEST(Signal, NotifyDeliversTheSignalAsAValue) {
  auto sigs = signal::notify({SIGUSR1, SIGUSR2});
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  auto r = recv_signal(sigs);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, SIGUSR1);
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  auto r2 = recv_signal(sigs);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, SIGUSR2);
  signal::stop(sigs);
}

FIBER_TEST(Signal, EverySubscriberReceivesAndStopEndsOne) {
  auto a = signal::notify({SIGUSR1});
  Chan<int> b(4);
  signal::notify(b, {SIGUSR1});
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_EQ(*recv_signal(a), SIGUSR1);
  EXPECT_EQ(*recv_signal(b), SIGUSR1);
  signal::stop(a);
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);  // b still holds the handler installed
  EXPECT_EQ(*recv_signal(b), SIGUSR1);
  EXPECT_EQ(a.try_recv().status, ChanStatus::would_block);  // stopped: nothing more for a
  signal::stop(b);
}

// Waits for ctx to be done, polling (see recv_signal: under TSan a handler needs a worker that
// passes through intercepted calls).
bool done_within(const Context& ctx, Duration limit = 10s) {
  const TimePoint until = Clock::now() + limit;
  while (!ctx.err() && Clock::now() < until) this_fiber::sleep_for(5ms);
  return static_cast<bool>(ctx.err());
}

FIBER_TEST(Signal, NotifyContextIsCancelledByTheSignal) {
  auto [ctx, stop] = signal::notify_context(background(), {SIGUSR1});
  EXPECT_FALSE(ctx.err());
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  ASSERT_TRUE(done_within(ctx));
  EXPECT_EQ(ctx.err(), errc::canceled);
  EXPECT_EQ(cause(ctx), std::errc::interrupted);
  stop();
}

FIBER_TEST(Signal, NotifyContextStopCancelsAndUnsubscribes) {
  auto other = signal::notify({SIGUSR1});  // keeps the handler installed after stop()
  {
    auto [ctx, stop] = signal::notify_context(background(), {SIGUSR1});
    stop();
    EXPECT_EQ(ctx.err(), errc::canceled);
    EXPECT_EQ(cause(ctx), errc::canceled);  // stopped, not signalled
  }
  // The relay fiber has gone (the leak check would say otherwise); a signal reaches only `other`.
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_EQ(*recv_signal(other), SIGUSR1);
  signal::stop(other);
}

FIBER_TEST(Signal, NotifyContextFollowsItsParent) {
  auto [parent, cancel_parent] = with_cancel(background());
  auto [ctx, stop] = signal::notify_context(parent, {SIGUSR2});
  cancel_parent();
  EXPECT_EQ(ctx.err(), errc::canceled);
  stop();
}

FIBER_TEST(Signal, StopRestoresThePreviousDisposition) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction saved {};
  ASSERT_EQ(::sigaction(SIGUSR2, &ignore, &saved), 0);
  auto sigs = signal::notify({SIGUSR2});
  struct sigaction now {};
  ::sigaction(SIGUSR2, nullptr, &now);
  EXPECT_NE(now.sa_handler, SIG_IGN);
  signal::stop(sigs);
  ::sigaction(SIGUSR2, nullptr, &now);
  EXPECT_EQ(now.sa_handler, SIG_IGN);
  // (No kill() here to "prove" it is ignored: a signal generated while some thread briefly
  // blocks everything, as pthread_create does, stays pending and would meet the SIG_DFL that
  // the next line restores.)
  ::sigaction(SIGUSR2, &saved, nullptr);
}

FIBER_TEST(Signal, MisuseThrows) {
  EXPECT_THROW((void)signal::notify({SIGKILL}), Panic);
  EXPECT_THROW((void)signal::notify({SIGSEGV}), Panic);
  EXPECT_THROW((void)signal::notify({0}), Panic);
  EXPECT_THROW(signal::notify(Sender<int>(), {SIGUSR1}), Panic);
}

TEST(SignalDeadlock, AFiberWaitingForASignalIsNotADeadlock) {
  if (testing::kTsan) {
    // The point of the test is a runtime with nothing to do but wait for the signal, so its
    // worker sleeps in a raw futex, where TSan never runs the (deferred) handler.
    GTEST_SKIP() << "TSan defers signal handlers while the only worker sleeps in a raw syscall";
  }
  Options opts;
  opts.workers = 1;
  opts.deadlock_grace = std::chrono::milliseconds(20);
  opts.on_deadlock = Options::OnDeadlock::throw_from_run;
  int got = 0;
  // A plain thread sends the signal well after several grace periods.
  std::thread sender;
  EXPECT_NO_THROW(spindle::run(opts, [&] {
    auto sigs = signal::notify({SIGUSR1});
    sender = std::thread([] {
      std::this_thread::sleep_for(200ms);
      ::kill(::getpid(), SIGUSR1);
    });
    got = *sigs.recv();
    signal::stop(sigs);
  }));
  sender.join();
  EXPECT_EQ(got, SIGUSR1);
}

}  // namespace
}  // namespace spindle
