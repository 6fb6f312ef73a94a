#include "os/relayed_signals.hpp"

#include <pthread.h>

namespace spindle::detail {

std::atomic<std::uint64_t> g_relayed_signals{0};

void add_relayed_signal(int sig) noexcept {
  g_relayed_signals.fetch_or(std::uint64_t{1} << (sig - 1), std::memory_order_seq_cst);
}

void remove_relayed_signal(int sig) noexcept {
  g_relayed_signals.fetch_and(~(std::uint64_t{1} << (sig - 1)), std::memory_order_seq_cst);
}

void RelayedSignalMask::apply() noexcept {
  (void)::pthread_sigmask(SIG_BLOCK, nullptr, &saved_);
  block_set();
}

void RelayedSignalMask::restore() noexcept {
  (void)::pthread_sigmask(SIG_SETMASK, &saved_, nullptr);
}

void RelayedSignalMask::block_set() noexcept {
  // From the saved mask each time, so a signal no longer relayed goes back to how the thread had
  // it, and one the thread blocked itself stays blocked.
  applied_ = g_relayed_signals.load(std::memory_order_seq_cst);
  sigset_t mask = saved_;
  for (int sig = 1; sig <= 64; ++sig) {
    if ((applied_ >> (sig - 1)) & 1) (void)::sigaddset(&mask, sig);
  }
  (void)::pthread_sigmask(SIG_SETMASK, &mask, nullptr);
}

}  // namespace spindle::detail
