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

void SpinLock::lock_slow() noexcept {
  int spins = 0;
  for (;;) {
    while (locked_.load(std::memory_order_relaxed)) {
      // The holder may have been preempted by the OS: after a while give it the CPU.
      if (++spins < 100) spin_pause();
      else std::this_thread::yield();
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

}  // namespace spindle::detail
