#include "fiber/overflow.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>

#include <atomic>
#include <cstring>
#include <mutex>

#include "diag/report.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

struct sigaction g_previous_segv;
struct sigaction g_previous_bus;
constexpr std::size_t kAltStackSize = 64 * 1024;
// A frame larger than this may jump over the guard page entirely; faults this far below a
// guarded stack still count as its overflow.
constexpr std::size_t kGuardSlack = 64 * 1024;
// How far below its stack an overflowing fiber's stack pointer may have run before faulting.
constexpr std::size_t kWildStackDistance = 256ull * 1024 * 1024;

thread_local const char* t_thread_stack_lo = nullptr;
thread_local const char* t_thread_stack_hi = nullptr;

bool on_worker_stack(const char* sp) {
  return sp >= t_thread_stack_lo && sp < t_thread_stack_hi;
}

void on_fault(int sig, siginfo_t* info, void* uctx) {
  Fiber* f = current_fiber();
  if (f != nullptr) {
    const Stack& stack = f->run().stack;
    // The fault is this fiber's overflow if its stack pointer left its stack, or if it touched
    // the guard page (or just below it: a large frame can jump over the guard).
    const auto* mc = &static_cast<ucontext_t*>(uctx)->uc_mcontext;
#if defined(__x86_64__)
    auto* sp = reinterpret_cast<char*>(mc->gregs[REG_RSP]);
#elif defined(__aarch64__)
    auto* sp = reinterpret_cast<char*>(mc->sp);
#else
    char* sp = stack.lo;
#endif
    auto* addr = static_cast<char*>(info->si_addr);
    char* bottom = stack.guard != nullptr ? stack.guard : stack.lo;
    // The fault address just below the stack (a frame touching the guard or just past it), or
    // the stack pointer anywhere below it: an unguarded stack's overflow may run through the
    // neighbouring stacks before it faults. The worker's own stack is excluded (current_ is still
    // set while the worker runs after_switch on it).
    auto just_below = [&](const char* p) {
      return p < stack.lo &&
             static_cast<std::size_t>(stack.lo - p) <=
                 kGuardSlack + static_cast<std::size_t>(stack.lo - bottom);
    };
    const bool sp_below = sp < stack.lo &&
                          static_cast<std::size_t>(stack.lo - sp) <= kWildStackDistance &&
                          !on_worker_stack(sp);
    if (just_below(addr) || sp_below) {
      die_stack_overflow(f, stack.guard != nullptr ? "it ran into its guard page"
                                                      : "it ran off the bottom of its stack");
    }
  }
  // Not ours: hand the fault to whoever handled it before (ASan, a crash reporter, the default).
  const struct sigaction& prev = sig == SIGSEGV ? g_previous_segv : g_previous_bus;
  if ((prev.sa_flags & SA_SIGINFO) != 0 && prev.sa_sigaction != nullptr) {
    prev.sa_sigaction(sig, info, uctx);
    return;
  }
  if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler != nullptr) {
    prev.sa_handler(sig);
    return;
  }
  signal(sig, SIG_DFL);  // returning re-executes the faulting access, now fatal as usual
}

}  // namespace

void install_overflow_handler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &on_fault;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}

AltSignalStack::AltSignalStack() {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* lo = nullptr;
    std::size_t size = 0;
    if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
      t_thread_stack_lo = static_cast<char*>(lo);
      t_thread_stack_hi = static_cast<char*>(lo) + size;
    }
    pthread_attr_destroy(&attr);
  }
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && (current.ss_flags & SS_DISABLE) == 0) {
    return;  // the thread has one already (e.g. a sanitizer's)
  }
  size_ = kAltStackSize;
  mem_ = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem_ == MAP_FAILED) {
    mem_ = nullptr;
    return;
  }
  stack_t ss{};
  ss.ss_sp = mem_;
  ss.ss_size = size_;
  installed_ = sigaltstack(&ss, nullptr) == 0;
}

AltSignalStack::~AltSignalStack() {
  if (installed_) {
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
  }
  if (mem_ != nullptr) ::munmap(mem_, size_);
}

}  // namespace spindle::detail
