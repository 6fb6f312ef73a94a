#include <spindle/detail/spinlock.hpp>

#include <thread>

namespace spindle::detail {

void spin_pause() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

namespace {
constexpr int kMaxBackoff = 64;  // pauses (~40 cycles each on Zen): a few microseconds at most
}  // namespace

void SpinLock::lock_slow() noexcept {
  // Test-and-test-and-set with exponential backoff. Under contention between cores (several
  // fibers on different workers using one channel) waiters that re-read the word at once steal
  // the line from the holder at every operation; backing off lets the holder finish a burst of
  // operations with the line local, which is most of the throughput (Go's runtime lock gets the
  // same effect by putting a contended waiter to sleep).
  int backoff = 1;
  int rounds = 0;
  for (;;) {
    while (locked_.load(std::memory_order_relaxed)) {
      for (int i = 0; i < backoff; ++i) spin_pause();
      if (backoff < kMaxBackoff) backoff *= 2;
      // The holder may have been preempted by the OS: after a while give it the CPU.
      else if (++rounds % 8 == 0) std::this_thread::yield();
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

}  // namespace spindle::detail
