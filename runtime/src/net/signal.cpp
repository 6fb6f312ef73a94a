// Signal relay: handler -> pending mask + self-pipe -> relay thread -> try_send to subscribers
// (see spindle/net/signal.hpp for the design and why not signalfd).
//
// Invariants:
//  * The handler touches only g_pending (lock-free atomics) and write(2) on g_pipe_w: both
//    async-signal-safe; it saves and restores errno.
//  * refs[s] == number of subscriptions that include signal s; the handler is installed for s
//    exactly while refs[s] > 0, and old[s] holds the disposition to restore. All under mu.
//  * The relay thread delivers under mu, so stop() returning means no further send to that
//    channel (Go's guarantee).
//  * A signal with a handler here is in the relayed set (os/relayed_signals.hpp): the runtime's
//    workers block it, and the relay thread, which blocks nothing, takes it from the kernel.
#include <spindle/net/signal.hpp>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <bitset>
#include <cerrno>
#include <csignal>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <spindle/errors.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>

#include "os/relayed_signals.hpp"
#include "sched/scheduler.hpp"

namespace spindle::signal::detail {
namespace {

constexpr int kMaxSignal = 64;

std::atomic<std::uint64_t> g_pending[2];
std::atomic<int> g_pipe_w{-1};

void on_signal(int sig) {
  const int saved = errno;
  if (sig > 0 && sig <= kMaxSignal) {
    g_pending[sig / 64].fetch_or(std::uint64_t{1} << (sig % 64), std::memory_order_relaxed);
    const int fd = g_pipe_w.load(std::memory_order_relaxed);
    const char c = 0;
    if (fd >= 0) {
      [[maybe_unused]] const ssize_t n = ::write(fd, &c, 1);  // full pipe: a wake is pending
    }
  }
  errno = saved;
}

struct Subscription {
  Sender<int> ch;
  std::bitset<kMaxSignal + 1> sigs;
  spindle::detail::Scheduler* sched = nullptr;  // whose deadlock detector counts it
};

struct Registry {
  std::mutex mu;
  std::vector<Subscription> subs;
  int refs[kMaxSignal + 1] = {};
  struct sigaction old[kMaxSignal + 1] = {};
  bool relay_started = false;
  int pipe_r = -1;
};

Registry& registry() {
  static Registry* r = new Registry();  // leaked: the relay thread uses it until exit
  return *r;
}

void release_sched(const Subscription& s) {
  if (s.sched != nullptr && s.sched == spindle::detail::current_scheduler()) {
    s.sched->external_waits_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

// Drops signal `sig` from the handler set if nobody wants it any more. Under mu.
void unref(Registry& r, int sig) {
  if (--r.refs[sig] != 0) return;
  ::sigaction(sig, &r.old[sig], nullptr);
  spindle::detail::remove_relayed_signal(sig);  // workers unblock it before they next sleep
}

void deliver(Registry& r, int sig) {
  std::lock_guard lock(r.mu);
  for (std::size_t i = 0; i < r.subs.size();) {
    Subscription& s = r.subs[i];
    bool drop = false;
    if (s.sigs.test(static_cast<std::size_t>(sig))) {
      try {
        (void)s.ch.try_send(sig);  // would_block: the receiver is behind; drop, as Go does
      } catch (const ClosedChannelError&) {
        drop = true;  // closed without stop(): end its subscription
      }
    }
    if (drop) {
      for (int k = 1; k <= kMaxSignal; ++k) {
        if (s.sigs.test(static_cast<std::size_t>(k))) unref(r, k);
      }
      release_sched(s);
      r.subs.erase(r.subs.begin() + static_cast<std::ptrdiff_t>(i));
    } else {
      ++i;
    }
  }
}

void relay(Registry& r) {
  // The one thread that takes relayed signals (workers block them). It waits in poll(2), not
  // read(2): ThreadSanitizer runs a handler at once only in calls it treats as blocking, poll
  // but not read (GCC 12), and SA_RESTART resumes the read with the handler still deferred.
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, nullptr);
  char buf[64];
  for (;;) {
    pollfd readable{r.pipe_r, POLLIN, 0};
    if (::poll(&readable, 1, -1) < 0) continue;  // EINTR: a handler ran here
    const ssize_t n = ::read(r.pipe_r, buf, sizeof buf);
    const int err = errno;
    if (n < 0 && err == EINTR) continue;
    if (n <= 0) return;  // cannot happen: we never close the write end
    for (int w = 0; w < 2; ++w) {
      std::uint64_t bits = g_pending[w].exchange(0, std::memory_order_relaxed);
      while (bits != 0) {
        const int bit = __builtin_ctzll(bits);
        bits &= bits - 1;
        const int sig = w * 64 + bit;
        if (sig >= 1 && sig <= kMaxSignal) deliver(r, sig);
      }
    }
  }
}

// Under mu.
void start_relay(Registry& r) {
  if (r.relay_started) return;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    const int err = errno;
    throw std::system_error(err, std::system_category(), "signal: pipe2");
  }
  ::fcntl(fds[1], F_SETFL, O_NONBLOCK);  // the handler must never block
  r.pipe_r = fds[0];
  g_pipe_w.store(fds[1], std::memory_order_relaxed);
  std::thread relay_thread([&r] { relay(r); });
  pthread_setname_np(relay_thread.native_handle(), "spindle-signals");  // as /proc and gdb show it
  relay_thread.detach();
  r.relay_started = true;
}

void check_signal(int sig) {
  if (sig < 1 || sig > kMaxSignal) {
    throw Panic("signal: invalid signal number " + std::to_string(sig));
  }
  if (sig == SIGKILL || sig == SIGSTOP) {
    throw Panic("signal: SIGKILL and SIGSTOP cannot be caught");
  }
  if (sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL) {
    throw Panic("signal: synchronous fault signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL) cannot be "
                "notified");
  }
}

}  // namespace

void notify(Sender<int> ch, std::initializer_list<int> sigs) {
  if (ch.is_nil()) throw Panic("signal: Notify using nil channel");
  for (int sig : sigs) check_signal(sig);
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  start_relay(r);
  Subscription* sub = nullptr;
  for (auto& s : r.subs) {
    if (s.ch == ch) sub = &s;
  }
  if (sub == nullptr) {
    r.subs.push_back(Subscription{std::move(ch), {}, spindle::detail::current_scheduler()});
    sub = &r.subs.back();
    if (sub->sched != nullptr) sub->sched->external_waits_.fetch_add(1, std::memory_order_seq_cst);
  }
  bool relayed_more = false;
  for (int sig : sigs) {
    if (sub->sigs.test(static_cast<std::size_t>(sig))) continue;
    sub->sigs.set(static_cast<std::size_t>(sig));
    if (r.refs[sig]++ == 0) {
      spindle::detail::add_relayed_signal(sig);
      struct sigaction sa {};
      sa.sa_handler = &on_signal;
      sigemptyset(&sa.sa_mask);
      sa.sa_flags = SA_RESTART | SA_ONSTACK;
      ::sigaction(sig, &sa, &r.old[sig]);
      relayed_more = true;
    }
  }
  // Sleeping workers block the new signals before they sleep again (a busy one, before its next
  // sleep); until then, a handler that runs on one of them still relays.
  if (relayed_more) {
    if (auto* s = spindle::detail::current_scheduler()) s->wake_all_idle_workers();
  }
}

void stop(spindle::detail::ChanCore* ch) {
  if (ch == nullptr) return;
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (std::size_t i = 0; i < r.subs.size(); ++i) {
    Subscription& s = r.subs[i];
    if (s.ch.detail_core() != ch) continue;
    for (int k = 1; k <= kMaxSignal; ++k) {
      if (s.sigs.test(static_cast<std::size_t>(k))) unref(r, k);
    }
    release_sched(s);
    r.subs.erase(r.subs.begin() + static_cast<std::ptrdiff_t>(i));
    return;
  }
}

}  // namespace spindle::signal::detail

namespace spindle::signal {

CancelableContext notify_context(const Context& parent, std::initializer_list<int> sigs) {
  // Two levels: the relay fiber owns the inner cancel (to cancel with a cause when a signal
  // comes), the caller owns the outer one (its stop). Either way the outer context is done,
  // which ends the relay.
  CancelableContext inner = with_cancel_cause(parent);
  CancelableContext outer = with_cancel(inner.ctx);
  Receiver<int> ch = notify(sigs);
  spindle::go(SpawnOptions{.name = "signal.notify_context"},
              [ch, done = outer.ctx, cancel = std::move(inner.cancel)]() mutable {
                if (spindle::select(spindle::case_recv(ch), spindle::case_recv(done.done())) == 0) {
                  cancel.cancel(std::make_error_code(std::errc::interrupted));
                }
                stop(ch);
              });
  return outer;
}

}  // namespace spindle::signal
