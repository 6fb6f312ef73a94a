// Netpoller: parks fibers on file descriptors and wakes them on readiness, from the scheduler's
// idle loop (Go's netpoll.go, with the epoll backend of netpoll_epoll.go).
//
// Contract (what a backend implements, and what the scheduler relies on):
//  * open(fd) registers fd once, edge-triggered for read and write; the returned PollDesc lives
//    until close(). Its epoll user data is (table index, generation): a reused fd number, or a
//    descriptor slot reused after close, never receives a stale event.
//  * wait(desc, mode, deadline, interrupt) parks the calling fiber until the descriptor is ready
//    for `mode` (or the deadline passes, or the interrupt fires, or the descriptor is closed).
//    Readiness is sticky: an event that arrives while nobody waits is remembered and consumed by
//    the next wait, so the "EAGAIN, then wait" sequence can never miss an edge.
//  * close(desc) wakes every fiber parked on it with PollResult::closed *before* the descriptor
//    is removed from epoll; the caller closes the fd afterwards.
//  * evict(desc) is the first half of close alone: it wakes the parked fibers with closed and
//    makes every later wait() return closed at once, but keeps the slot (and the registration)
//    until close(). A descriptor shared by several fibers needs the split (Go's pollDesc has it
//    too: evict on Close, free on the last reference): close() hands the slot to the next
//    open() at once, so a fiber that got EAGAIN just before another fiber's close() and then
//    called wait() would park on somebody else's descriptor and steal its wake-ups.
//  * poll(deadline) is called by the scheduler only: it collects ready events (blocking at most
//    until `deadline`; a past deadline polls without blocking) and readies the parked fibers.
//    Only one worker blocks in poll at a time; interrupt() ends that block early (eventfd).
//  * pending() counts fibers parked on descriptors: I/O they wait for can wake them, so the
//    deadlock detector treats them as live.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle::detail {

enum class PollMode : std::uint8_t { read, write };
enum class PollResult : std::uint8_t { ready, timeout, canceled, closed };

struct PollDesc {
  int fd = -1;
  std::uint32_t index = 0;
  std::uint32_t generation = 0;
  SpinLock mu;
  Waiter* reader = nullptr;     // at most one fiber waits per direction (as Go's pollDesc)
  Waiter* writer = nullptr;
  bool read_ready = false;      // sticky edge: consumed by the next wait
  bool write_ready = false;
  bool closing = false;
};

class Netpoller {
 public:
  Netpoller();
  ~Netpoller();
  Netpoller(const Netpoller&) = delete;
  Netpoller& operator=(const Netpoller&) = delete;

  // Registers a non-blocking fd. Throws std::system_error if epoll refuses it.
  PollDesc* open(int fd);
  // Wakes the fibers parked on `d` with PollResult::closed, unregisters it and frees the slot.
  // Does not close the fd. After it returns `d` may be handed to another open(): nobody may
  // use it again.
  void close(PollDesc* d);
  // Wakes the fibers parked on `d` with PollResult::closed; every later wait() on it returns
  // closed at once and readiness events are ignored. The slot stays reserved until close().
  // Idempotent; thread-safe.
  void evict(PollDesc* d);
  // Parks until `d` is ready for `mode` (a fiber, or a plain thread). One waiter per direction
  // at a time, as in Go: a second concurrent reader (or writer) throws spindle::Panic.
  PollResult wait(PollDesc* d, PollMode mode, TimePoint deadline = kNoDeadline,
                  const Interrupt* interrupt = nullptr,
                  std::source_location where = std::source_location::current());

  // Scheduler side. Returns how many fibers were readied.
  int poll(TimePoint deadline);
  void interrupt();
  [[nodiscard]] int pending() const noexcept { return pending_.load(std::memory_order_seq_cst); }

 private:
  int epfd_ = -1;
  int eventfd_ = -1;
  std::atomic<int> pending_{0};
  std::mutex table_mu_;                            // open/close only, never the hot path
  std::vector<std::unique_ptr<PollDesc>> table_;   // index -> descriptor (slots reused)
  std::vector<std::uint32_t> free_slots_;
  std::atomic<bool> interrupted_{false};
};

// The running scheduler's netpoller, created on first use. Null outside the runtime.
Netpoller* netpoller();

}  // namespace spindle::detail
