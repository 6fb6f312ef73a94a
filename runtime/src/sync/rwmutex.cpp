// RWMutex slow paths: queueing readers and writers, and deciding who gets the lock next (see
// spindle/rwmutex.hpp for the state word and its invariants).
//
// Who may change what while the queue lock (kQueueLock) is held by someone else:
//  * the reader count rises lock-free only while neither kWriter nor kWriterWaiting is set, and
//    falls lock-free only while it stays above zero or no *Waiting bit is set (the last reader
//    out with waiters takes the queue lock);
//  * kWriter is set lock-free only from a state with no readers, no writer waiting and the
//    queue lock free, and cleared lock-free only from exactly kWriter.
// So with the queue lock held and kWriterWaiting set, "no readers and no writer" is stable, and
// the hand-off decisions below cannot be invalidated by a concurrent fast path. Updates made
// under the queue lock are still compare-exchange loops that re-read the word.
#include <spindle/rwmutex.hpp>

#include <spindle/errors.hpp>

#include "sync/wait_list.hpp"

namespace spindle {

using detail::Waiter;
using detail::WakeReason;
using detail::sync::ReadyList;
using detail::sync::WaitList;

namespace {

// Who the lock goes to when nobody holds it: the first writer that can still be claimed if no
// reader is active; else, when no writer waits, every queued reader.
struct Dispatch {
  bool writer = false;       // a writer was handed the lock: set kWriter
  std::uint64_t readers = 0; // readers admitted: add to the count
};

std::uint64_t admit_readers(WaitList& readers, ReadyList& ready) noexcept {
  std::uint64_t n = 0;
  while (Waiter* w = detail::sync::pop_claimable(readers)) {
    ready.push(w);
    ++n;
  }
  return n;
}

Dispatch dispatch_free_lock(std::uint64_t active_readers, WaitList& writers, WaitList& readers,
                            ReadyList& ready) noexcept {
  Dispatch d;
  if (active_readers == 0) {
    if (Waiter* w = detail::sync::pop_claimable(writers)) {
      ready.push(w);
      d.writer = true;
      return d;
    }
  }
  if (writers.empty()) d.readers = admit_readers(readers, ready);
  return d;
}

}  // namespace

void RWMutex::release_queue_fn(void* self) noexcept {
  static_cast<RWMutex*>(self)->state_.fetch_and(~kQueueLock, std::memory_order_release);
}

WakeReason RWMutex::lock_slow(TimePoint deadline, const detail::Interrupt* in,
                              std::source_location where) {
  WaitList writers(writers_head_, writers_tail_);
  WaitList readers(readers_head_, readers_tail_);
  std::uint64_t s = detail::sync::lock_bit(state_, kQueueLock);
  for (;;) {
    if ((s & (kReaderMask | kWriter)) == 0 && writers.empty()) {
      if (state_.compare_exchange_weak(s, (s | kWriter) & ~kQueueLock,
                                       std::memory_order_acq_rel, std::memory_order_relaxed)) {
        return WakeReason::notified;
      }
      continue;
    }
    // From this exchange on new readers queue behind us, and whoever releases the lock last
    // (writer or reader) sees kWriterWaiting and hands it over.
    if (state_.compare_exchange_weak(s, s | kWriterWaiting, std::memory_order_relaxed,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  Waiter w;
  writers.push_back(&w);
  const WakeReason r =
      detail::park(w, {detail::WaitReason::rwmutex_write, this, where},
                   {.unlock = &RWMutex::release_queue_fn, .unlock_arg = this,
                    .deadline = deadline, .interrupt = in});
  if (r == WakeReason::notified) return r;  // kWriter was set for us

  // Gave up. We may have been what held queued readers back, or next in line for a lock that
  // is free now: pass it on before leaving.
  ReadyList ready;
  s = detail::sync::lock_bit(state_, kQueueLock);
  if (w.flag) writers.remove(&w);
  Dispatch d;
  if ((s & kWriter) == 0) d = dispatch_free_lock(s & kReaderMask, writers, readers, ready);
  for (;;) {
    std::uint64_t ns = s & ~(kQueueLock | kAnyWaiting);
    if (!writers.empty()) ns |= kWriterWaiting;
    if (!readers.empty()) ns |= kReaderWaiting;
    if (d.writer) ns |= kWriter;
    ns += d.readers;
    if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  ready.ready_all();
  return r;
}

WakeReason RWMutex::lock_shared_slow(TimePoint deadline, const detail::Interrupt* in,
                                     std::source_location where) {
  WaitList readers(readers_head_, readers_tail_);
  std::uint64_t s = detail::sync::lock_bit(state_, kQueueLock);
  for (;;) {
    if ((s & (kWriter | kWriterWaiting)) == 0) {
      if (state_.compare_exchange_weak(s, (s & ~kQueueLock) + 1, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return WakeReason::notified;
      }
      continue;
    }
    if (state_.compare_exchange_weak(s, s | kReaderWaiting, std::memory_order_relaxed,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  Waiter w;
  readers.push_back(&w);
  const WakeReason r =
      detail::park(w, {detail::WaitReason::rwmutex_read, this, where},
                   {.unlock = &RWMutex::release_queue_fn, .unlock_arg = this,
                    .deadline = deadline, .interrupt = in});
  if (r == WakeReason::notified) return r;  // the admitting unlock counted us

  // Gave up: a queued reader holds nobody else back, so just withdraw.
  s = detail::sync::lock_bit(state_, kQueueLock);
  if (w.flag) readers.remove(&w);
  for (;;) {
    std::uint64_t ns = s & ~(kQueueLock | kReaderWaiting);
    if (!readers.empty()) ns |= kReaderWaiting;
    if (state_.compare_exchange_weak(s, ns, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  return r;
}

void RWMutex::unlock_slow() {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  int spins = 0;
  for (;;) {
    if ((s & kWriter) == 0) throw SyncError("sync: Unlock of unlocked RWMutex");
    if ((s & kQueueLock) != 0) {
      detail::sync::backoff(spins);
      s = state_.load(std::memory_order_relaxed);
      continue;
    }
    if (state_.compare_exchange_weak(s, s | kQueueLock, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      s |= kQueueLock;
      break;
    }
  }
  // We hold the lock and the queue lock: nothing else can change the word now.
  WaitList writers(writers_head_, writers_tail_);
  WaitList readers(readers_head_, readers_tail_);
  ReadyList ready;
  // Go: readers that queued behind this writer go first, all together; the next writer then
  // waits for them. Only when no reader waits is the lock handed straight to a writer.
  Dispatch d;
  d.readers = admit_readers(readers, ready);
  if (d.readers == 0) {
    if (Waiter* w = detail::sync::pop_claimable(writers)) {
      ready.push(w);
      d.writer = true;
    }
  }
  for (;;) {
    std::uint64_t ns = s & ~(kQueueLock | kAnyWaiting | kWriter);
    if (!writers.empty()) ns |= kWriterWaiting;
    if (!readers.empty()) ns |= kReaderWaiting;
    if (d.writer) ns |= kWriter;
    ns += d.readers;
    if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  ready.ready_all();  // nothing of *this is touched from here on
}

void RWMutex::unlock_shared_slow() {
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  int spins = 0;
  for (;;) {
    if ((s & kReaderMask) == 0) throw SyncError("sync: RUnlock of unlocked RWMutex");
    if ((s & kQueueLock) != 0) {
      detail::sync::backoff(spins);
      s = state_.load(std::memory_order_relaxed);
      continue;
    }
    if (state_.compare_exchange_weak(s, s | kQueueLock, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      s |= kQueueLock;
      break;
    }
  }
  // Drop our hold first, keeping the queue lock: nobody can take the lock as a writer (or
  // destroy the RWMutex) before we release the queue lock, and once the count is zero with a
  // writer waiting it stays zero, so the decision below is not invalidated.
  do {
  } while (!state_.compare_exchange_weak(s, s - 1, std::memory_order_acq_rel,
                                         std::memory_order_relaxed));
  s -= 1;
  WaitList writers(writers_head_, writers_tail_);
  WaitList readers(readers_head_, readers_tail_);
  ReadyList ready;
  Dispatch d;
  if ((s & (kReaderMask | kWriter)) == 0) d = dispatch_free_lock(0, writers, readers, ready);
  for (;;) {
    std::uint64_t ns = s & ~(kQueueLock | kAnyWaiting);
    if (!writers.empty()) ns |= kWriterWaiting;
    if (!readers.empty()) ns |= kReaderWaiting;
    if (d.writer) ns |= kWriter;
    ns += d.readers;
    if (state_.compare_exchange_weak(s, ns, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  ready.ready_all();
}

}  // namespace spindle
