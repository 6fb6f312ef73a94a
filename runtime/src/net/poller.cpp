#include "net/poller.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include <spindle/errors.hpp>

#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

constexpr std::uint64_t kEventFdTag = ~std::uint64_t{0};
constexpr int kMaxEvents = 128;

std::uint64_t pack(const PollDesc* d) {
  return (static_cast<std::uint64_t>(d->generation) << 32) | d->index;
}

}  // namespace

Netpoller::Netpoller() {
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
  eventfd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (eventfd_ < 0) {
    const int err = errno;
    ::close(epfd_);
    throw std::system_error(err, std::generic_category(), "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: an interrupt stays visible until drained
  ev.data.u64 = kEventFdTag;
  ::epoll_ctl(epfd_, EPOLL_CTL_ADD, eventfd_, &ev);
}

Netpoller::~Netpoller() {
  ::close(eventfd_);
  ::close(epfd_);
}

PollDesc* Netpoller::open(int fd) {
  PollDesc* d;
  {
    std::lock_guard lock(table_mu_);
    if (!free_slots_.empty()) {
      d = table_[free_slots_.back()].get();
      free_slots_.pop_back();
    } else {
      table_.push_back(std::make_unique<PollDesc>());
      d = table_.back().get();
      d->index = static_cast<std::uint32_t>(table_.size() - 1);
    }
  }
  d->mu.lock();
  d->fd = fd;
  d->reader = d->writer = nullptr;
  d->read_ready = d->write_ready = false;
  d->closing = false;
  const std::uint64_t data = pack(d);
  d->mu.unlock();
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = data;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    const int err = errno;  // captured before anything else can overwrite it
    close(d);
    throw std::system_error(err, std::generic_category(), "epoll_ctl(ADD)");
  }
  return d;
}

void Netpoller::evict(PollDesc* d) {
  Waiter* wake[2] = {nullptr, nullptr};
  d->mu.lock();
  d->closing = true;
  for (Waiter** slot : {&d->reader, &d->writer}) {
    if (*slot != nullptr && (*slot)->claim(WakeReason::notified)) {
      (*slot)->flag = true;  // woken by close, not by readiness
      wake[slot == &d->reader ? 0 : 1] = *slot;
    }
    *slot = nullptr;
  }
  d->mu.unlock();
  for (Waiter* w : wake) {
    if (w != nullptr) w->ready();
  }
}

void Netpoller::close(PollDesc* d) {
  evict(d);
  d->mu.lock();
  const int fd = d->fd;
  d->mu.unlock();
  if (fd >= 0) ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  d->mu.lock();
  ++d->generation;  // any event still in flight for the old registration is now stale
  d->fd = -1;
  d->read_ready = d->write_ready = false;
  d->mu.unlock();
  std::lock_guard lock(table_mu_);
  free_slots_.push_back(d->index);
}

PollResult Netpoller::wait(PollDesc* d, PollMode mode, TimePoint deadline, const Interrupt* interrupt,
                           std::source_location where) {
  d->mu.lock();
  if (d->closing || d->fd < 0) {
    d->mu.unlock();
    return PollResult::closed;
  }
  bool& ready = mode == PollMode::read ? d->read_ready : d->write_ready;
  if (ready) {
    ready = false;
    d->mu.unlock();
    return PollResult::ready;
  }
  Waiter*& slot = mode == PollMode::read ? d->reader : d->writer;
  if (slot != nullptr) {
    d->mu.unlock();
    throw Panic(mode == PollMode::read ? "net: two fibers reading one descriptor at once"
                                       : "net: two fibers writing one descriptor at once");
  }
  Waiter w;
  slot = &w;
  pending_.fetch_add(1, std::memory_order_seq_cst);
  ParkOptions opts;
  opts.unlock = SpinLock::unlock_fn;
  opts.unlock_arg = &d->mu;
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason why = park(
      w, {mode == PollMode::read ? WaitReason::io_read : WaitReason::io_write, d, where}, opts);
  pending_.fetch_sub(1, std::memory_order_seq_cst);
  if (why != WakeReason::notified) {
    d->mu.lock();
    if (slot == &w) slot = nullptr;
    d->mu.unlock();
    return why == WakeReason::timeout ? PollResult::timeout : PollResult::canceled;
  }
  return w.flag ? PollResult::closed : PollResult::ready;
}

int Netpoller::poll(TimePoint deadline) {
  epoll_event events[kMaxEvents];
  timespec ts{};
  const timespec* tsp = nullptr;
  if (deadline != kNoDeadline) {
    auto left = deadline - Clock::now();
    if (left < Duration::zero()) left = Duration::zero();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    tsp = &ts;
  }
  const int n = ::epoll_pwait2(epfd_, events, kMaxEvents, tsp, nullptr);
  int readied = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t data = events[i].data.u64;
    if (data == kEventFdTag) {
      std::uint64_t drained;
      while (::read(eventfd_, &drained, sizeof drained) > 0) {
      }
      interrupted_.store(false, std::memory_order_seq_cst);
      continue;
    }
    const auto index = static_cast<std::uint32_t>(data);
    const auto generation = static_cast<std::uint32_t>(data >> 32);
    PollDesc* d;
    {
      std::lock_guard lock(table_mu_);
      if (index >= table_.size()) continue;
      d = table_[index].get();
    }
    const std::uint32_t ev = events[i].events;
    Waiter* wake[2] = {nullptr, nullptr};
    d->mu.lock();
    if (d->generation == generation && !d->closing) {
      if ((ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0) {
        if (d->reader != nullptr && d->reader->claim(WakeReason::notified)) wake[0] = d->reader;
        else d->read_ready = true;
        d->reader = nullptr;
      }
      if ((ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) != 0) {
        if (d->writer != nullptr && d->writer->claim(WakeReason::notified)) wake[1] = d->writer;
        else d->write_ready = true;
        d->writer = nullptr;
      }
    }
    d->mu.unlock();
    for (Waiter* w : wake) {
      if (w != nullptr) {
        w->ready(Waiter::Order::fifo);
        ++readied;
      }
    }
  }
  return readied;
}

void Netpoller::interrupt() {
  if (interrupted_.exchange(true, std::memory_order_seq_cst)) return;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(eventfd_, &one, sizeof one);
}

Netpoller* netpoller() {
  Scheduler* s = current_scheduler();
  return s == nullptr ? nullptr : &s->netpoller();
}

}  // namespace spindle::detail
