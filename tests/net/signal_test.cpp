// Signals as channel values: delivery, several subscribers, stop, restored dispositions, misuse,
// and the deadlock detector counting a fiber that waits for a signal.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <thread>

#include <spindle/chan.hpp>
#include <spindle/errors.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/runtime.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

using namespace std::chrono_literals;

FIBER_TEST(Signal, NotifyDeliversTheSignalAsAValue) {
  auto sigs = signal::notify({SIGUSR1, SIGUSR2});
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  auto r = sigs.recv_for(10s);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, SIGUSR1);
  ASSERT_EQ(::kill(::getpid(), SIGUSR2), 0);
  auto r2 = sigs.recv_for(10s);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(*r2, SIGUSR2);
  signal::stop(sigs);
}

FIBER_TEST(Signal, EverySubscriberReceivesAndStopEndsOne) {
  auto a = signal::notify({SIGUSR1});
  Chan<int> b(4);
  signal::notify(b, {SIGUSR1});
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);
  EXPECT_EQ(*a.recv_for(10s), SIGUSR1);
  EXPECT_EQ(*b.recv_for(10s), SIGUSR1);
  signal::stop(a);
  ASSERT_EQ(::kill(::getpid(), SIGUSR1), 0);  // b still holds the handler installed
  EXPECT_EQ(*b.recv_for(10s), SIGUSR1);
  EXPECT_EQ(a.try_recv().status, ChanStatus::would_block);  // stopped: nothing more for a
  signal::stop(b);
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
