// Fairness: a pair of fibers handing off to each other through run_next must not starve the
// other runnable fibers of their worker (every 61st pick takes the oldest queued fiber first).
#include <atomic>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>
#include <spindle/waitgroup.hpp>

#include "support/fiber_test.hpp"

namespace spindle {
namespace {

FIBER_TEST(Fairness, PingPongPairDoesNotStarveAQueuedFiber) {
  std::atomic<bool> stop{false};
  Chan<int> ping(0), pong(0);
  WaitGroup wg;
  wg.go([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      ping.send(1);
      (void)pong.recv();
    }
    ping.close();
  });
  wg.go([&] {
    for (int v : ping) pong.send(v);
  });
  // Queued behind the pair on the same worker: it must get its turn.
  wg.go([&] { stop.store(true, std::memory_order_relaxed); });
  wg.wait();
  EXPECT_TRUE(stop.load());
}

}  // namespace
}  // namespace spindle
