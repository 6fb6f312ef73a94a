// Deadlock reports: when every fiber is blocked and nothing can wake one, the runtime prints
// "all fibers are asleep - deadlock!" with every blocked fiber's wait reason and call site, and
// exits with kDeadlockExitCode (or throws from run()). Death tests run in a child process.
#include <gtest/gtest.h>

#include <spindle/chan.hpp>
#include <spindle/debug.hpp>
#include <spindle/mutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/this_fiber.hpp>
#include <spindle/waitgroup.hpp>

namespace spindle {
namespace {

Options fast_detection(int workers) {
  Options o;
  o.workers = workers;
  o.deadlock_grace = std::chrono::milliseconds(50);
  return o;
}

class DeadlockTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_P(DeadlockTest, ReceiveNobodyWillSend) {
  EXPECT_EXIT(run(fast_detection(GetParam()),
                  [] {
                    Chan<int> never(0);
                    WaitGroup wg;
                    wg.go([&] { (void)never.recv(); });
                    wg.wait();
                  }),
              ::testing::ExitedWithCode(kDeadlockExitCode),
              "all fibers are asleep - deadlock!(.|\n)*"
              "\\[chan receive, [0-9]+ ms\\] on 0x[0-9a-f]+\n    blocked at .*deadlock_test.cpp:[0-9]+"
              "(.|\n)*\\[waitgroup wait");
}

TEST_P(DeadlockTest, TwoMutexesLockedInOppositeOrder) {
  EXPECT_EXIT(run(fast_detection(GetParam()),
                  [] {
                    Mutex a, b;
                    Chan<int> a_held(1), b_held(1);  // buffered: the sends never block
                    WaitGroup wg;
                    wg.go([&] {
                      a.lock();
                      a_held.send(1);
                      (void)b_held.recv();
                      b.lock();  // b is held by the other fiber, which waits for a
                    });
                    wg.go([&] {
                      b.lock();
                      b_held.send(1);
                      (void)a_held.recv();
                      a.lock();
                    });
                    wg.wait();
                  }),
              ::testing::ExitedWithCode(kDeadlockExitCode),
              "all fibers are asleep - deadlock!(.|\n)*\\[mutex, [0-9]+ ms\\](.|\n)*"
              "\\[mutex, [0-9]+ ms\\]");
}

TEST_P(DeadlockTest, MainWaitsOnAWaitGroupThatNeverReachesZero) {
  EXPECT_EXIT(run(fast_detection(GetParam()),
                  [] {
                    WaitGroup wg;
                    wg.add(2);
                    go([&] { wg.done(); });
                    wg.wait();
                  }),
              ::testing::ExitedWithCode(kDeadlockExitCode),
              "all fibers are asleep - deadlock!(.|\n)*fiber [0-9]+ \"main\" \\[waitgroup wait");
}

TEST_P(DeadlockTest, CanThrowFromRunInstead) {
  Options o = fast_detection(GetParam());
  o.on_deadlock = Options::OnDeadlock::throw_from_run;
  // A nil channel: nothing is allocated, so the abandoned fiber leaks nothing (LSan).
  EXPECT_THROW(run(o, [] { (void)Chan<int>().recv(); }), DeadlockError);
}

TEST_P(DeadlockTest, SleepersAreNotDeadlocked) {
  // A pending timer can wake a fiber: not a deadlock, however long the grace period lasts.
  Options o = fast_detection(GetParam());
  o.on_deadlock = Options::OnDeadlock::throw_from_run;
  EXPECT_NO_THROW(run(o, [] { this_fiber::sleep_for(std::chrono::milliseconds(200)); }));
}

INSTANTIATE_TEST_SUITE_P(Workers, DeadlockTest, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace spindle
