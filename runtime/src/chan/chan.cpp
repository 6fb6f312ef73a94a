// Channel operations (Go's chan.go): send, receive, close, and the helpers select shares.
//
// Each operation takes the channel's SpinLock, completes at once if it can (hand-off to a parked
// partner, buffer, or closed), and otherwise queues a ChanNode on its own stack and parks with
// the lock released on the far side of the switch (park.hpp), so a partner can only find the
// node once this fiber is fully suspended. A partner completes the operation *for* the parked
// one: it claims the Waiter, moves the value directly between the two fibers' variables (or via
// the buffer when the buffer is full), records success, unlinks the node, drops the lock and
// only then readies the Waiter. After ready() it touches neither the node nor the Waiter.
//
// The invariants are stated in spindle/detail/chan_core.hpp.
#include <spindle/chan.hpp>
#include <spindle/this_fiber.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>

#include "chan/chan_internal.hpp"
#include "chan/ring.hpp"

namespace spindle {

const char* to_string(ChanStatus s) noexcept {
  switch (s) {
    case ChanStatus::ok: return "ok";
    case ChanStatus::closed: return "closed";
    case ChanStatus::would_block: return "would block";
    case ChanStatus::timeout: return "timeout";
    case ChanStatus::canceled: return "canceled";
  }
  return "?";
}

namespace detail {

// --- WaitQueue --------------------------------------------------------------------------------

void WaitQueue::push(ChanNode* n) noexcept {
  n->next = nullptr;
  n->prev = last_;
  if (last_ != nullptr) {
    last_->next = n;
  } else {
    first_.store(n, std::memory_order_relaxed);
  }
  last_ = n;
  n->queued = true;
  n->one_lock = n->waiter->claimers() == Waiter::Claimers::one_lock;
  if (!n->one_lock) ++others_;
  n->ahead = nullptr;
  n->ahead_waiter = nullptr;
  // The nodes just behind were queued recently, so this walk stays in cache; a short queue
  // ends it at once.
  ChanNode* behind = n;
  for (int i = 0; i < kAhead && behind != nullptr; ++i) behind = behind->prev;
  if (behind != nullptr) {
    behind->ahead = n;
    behind->ahead_waiter = n->waiter;
  }
}

void WaitQueue::remove(ChanNode* n) noexcept {
  if (n->prev != nullptr) {
    n->prev->next = n->next;
  } else {
    first_.store(n->next, std::memory_order_relaxed);
  }
  if (n->next != nullptr) {
    n->next->prev = n->prev;
  } else {
    last_ = n->prev;
  }
  n->next = n->prev = nullptr;
  n->queued = false;
  if (!n->one_lock) --others_;
}

ChanNode* WaitQueue::dequeue() noexcept {
  while (ChanNode* n = first_.load(std::memory_order_relaxed)) {
    remove(n);
    // A node whose Waiter is already claimed belongs to an operation that timed out, was
    // cancelled, or (a select) won on another case: it is waiting for our lock to withdraw.
    if (n->waiter->claim(WakeReason::notified)) return n;
  }
  return nullptr;
}

// --- ChanCore ---------------------------------------------------------------------------------

ChanCore::RingLayout ChanCore::ring_layout(const ElemOps* ops, std::size_t cap) {
  auto round_up = [](std::size_t n, std::size_t a) { return (n + a - 1) / a * a; };
  RingLayout l{};
  l.align = std::max({alignof(ChanCore), alignof(RingEnd), ops->align});
  l.ends_offset = round_up(sizeof(ChanCore), alignof(RingEnd));
  l.stamps_offset = l.ends_offset + 2 * sizeof(RingEnd);
  const std::size_t limit = std::numeric_limits<std::size_t>::max() / 4;  // Go: maxAlloc
  // Positions keep the index in the bits below one_lap and the lap above (2^40 slots leave
  // 2^23 laps and more before a position wraps).
  if (cap == 0 || cap > (limit - l.stamps_offset) / (sizeof(std::uint64_t) + ops->size + ops->align) ||
      cap >= (std::size_t{1} << 40)) {
    throw ChanError("makechan: size out of range");
  }
  l.values_offset = round_up(l.stamps_offset + cap * sizeof(std::uint64_t), ops->align);
  l.bytes = l.values_offset + cap * ops->size;
  return l;
}

ChanCore* ChanCore::create(const ElemOps* ops, std::size_t cap) {
  if (cap == 0) {
    void* mem = ::operator new(sizeof(ChanCore), std::align_val_t(alignof(ChanCore)));
    return ::new (mem) ChanCore(ops, 0);
  }
  const RingLayout l = ring_layout(ops, cap);
  void* mem = ::operator new(l.bytes, std::align_val_t(l.align));
  auto* c = ::new (mem) ChanCore(ops, cap);
  auto* base = static_cast<std::byte*>(mem);
  // One at a time: an array placement-new may ask for room for a cookie in front.
  c->ends_ = ::new (base + l.ends_offset) RingEnd();
  ::new (base + l.ends_offset + sizeof(RingEnd)) RingEnd();
  c->stamps_ = reinterpret_cast<std::atomic<std::uint64_t>*>(base + l.stamps_offset);
  for (std::size_t i = 0; i < cap; ++i) ::new (&c->stamps_[i]) std::atomic<std::uint64_t>(i);  // free, lap 0
  c->values_ = base + l.values_offset;
  c->one_lap_ = std::bit_ceil(static_cast<std::uint64_t>(cap) + 1);
  return c;
}

void ChanCore::destroy() noexcept {
  if (on_destroy_ != nullptr) on_destroy_(on_destroy_arg_);
  // The last handle is gone, so nobody can be parked on the channel or inside an end
  // operation (each holds a handle); only buffered values remain.
  std::size_t align = alignof(ChanCore);
  if (ends_ != nullptr) {
    Ring ring(*this);
    ring.enter_slow();
    while (ring.count() > 0) ring.pop_locked(nullptr, nullptr);
    align = ring_layout(ops_, cap_).align;
  }
  this->~ChanCore();
  ::operator delete(static_cast<void*>(this), std::align_val_t(align));
}

std::size_t ChanCore::len() const noexcept {
  return ends_ == nullptr ? 0 : Ring(const_cast<ChanCore&>(*this)).count_hint();
}

void ChanAccess::unlock(ChanCore& c) noexcept {
  if (c.ends_ == nullptr || !c.sendq_.empty() || !c.recvq_.empty() || closed(c) || !Ring(c).slow()) {
    c.lock_.unlock();
    return;
  }
  Ring ring(c);
  // Back to end operations. The first one may take a value we just left in the ring, and its
  // taker may then drop the channel's last handle (`Chan<int> done(1); go([&] { done.send(1);
  // }); done.recv();` and `done` goes out of scope) while we are still in here: hold a
  // reference of our own until our last touch. (Taken under the lock with the slow flags set, when
  // nobody can have taken anything yet, so the channel is certainly alive.)
  c.retain();
  ring.leave_slow();
  c.lock_.unlock();
  c.release();
}

bool ChanAccess::looks_ready(const ChanCore& c, bool send) noexcept {
  if (closed(c)) return true;
  if (!c.buffered()) return !(send ? c.recvq_ : c.sendq_).looks_empty();  // a partner parked
  const std::size_t queued = c.len();
  return send ? queued < c.cap_ : queued > 0;
}

// --- under the lock -----------------------------------------------------------------------------

bool ChanAccess::try_send_locked(ChanCore& c, void* elem, Waiter** wake) noexcept {
  if (ChanNode* r = c.recvq_.dequeue()) {
    // A receiver is parked, so the buffer is empty: hand the value straight to it.
    if (r->elem != nullptr) {
      r->put(r->elem, elem);
    } else {
      c.ops_->discard(elem);
    }
    r->success = true;
    r->waiter->tag = r->case_index;
    *wake = r->waiter;
    return true;
  }
  if (c.ends_ == nullptr) return false;
  Ring ring(c);
  ring.enter_slow();
  if (ring.count() < c.cap_) {
    ring.push_locked(elem);
    return true;
  }
  return false;
}

bool ChanAccess::try_recv_locked(ChanCore& c, void* out, PutFn put, Waiter** wake,
                                 bool* got_value) noexcept {
  if (c.ends_ != nullptr) Ring(c).enter_slow();
  if (ChanNode* s = c.sendq_.dequeue()) {
    if (c.ends_ == nullptr) {
      // Unbuffered: take the value straight from the parked sender's variable.
      if (out != nullptr) {
        put(out, s->elem);
      } else {
        c.ops_->discard(s->elem);
      }
    } else {
      // A sender is parked, so the ring is full: take its head, and move the sender's value
      // into the slot just freed (the tail, since the ring is full), keeping FIFO order.
      Ring ring(c);
      ring.pop_locked(out, put);
      ring.push_locked(s->elem);
    }
    s->success = true;
    s->waiter->tag = s->case_index;
    *wake = s->waiter;
    *got_value = true;
    return true;
  }
  if (c.ends_ != nullptr) {
    Ring ring(c);
    if (ring.count() > 0) {
      ring.pop_locked(out, put);
      *got_value = true;
      return true;
    }
  }
  if (ChanAccess::closed(c)) {
    *got_value = false;
    return true;
  }
  return false;
}

// --- blocking operations ----------------------------------------------------------------------

ChanStatus park_forever(WaitReason why, bool block, TimePoint deadline, const Interrupt* interrupt,
                        const std::source_location& where) {
  if (!block) return ChanStatus::would_block;
  Waiter w;
  ParkOptions opts;
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason r = park(w, WaitSite{why, nullptr, where}, opts);
  return r == WakeReason::timeout ? ChanStatus::timeout : ChanStatus::canceled;
}

namespace {

ChanStatus gave_up(WakeReason r) {
  return r == WakeReason::timeout ? ChanStatus::timeout : ChanStatus::canceled;
}

}  // namespace

[[noreturn]] void throw_send_on_closed() { throw ClosedChannelError("send on closed channel"); }

namespace {

// A park with no deadline and no interrupt can be ended only by whoever next holds the lock it
// parks under (Waiter::Claimers::one_lock): a plain send or receive.
void set_claimers_for(Waiter& w, TimePoint deadline, const Interrupt* interrupt) {
  if (deadline == kNoDeadline && interrupt == nullptr) w.set_claimers(Waiter::Claimers::one_lock);
}

// chan_send from the channel's lock on: the ring's end has been tried (or there is none).
ChanStatus send_locked_path(ChanCore& c, void* elem, bool block, TimePoint deadline,
                            const Interrupt* interrupt, const std::source_location& where) {
  ChanAccess::lock(c).lock();
  if (ChanAccess::closed(c)) {
    ChanAccess::unlock(c);
    throw_send_on_closed();
  }
  Waiter* wake = nullptr;
  if (ChanAccess::try_send_locked(c, elem, &wake)) {
    ChanAccess::unlock(c);
    if (wake != nullptr) wake->ready();
    return ChanStatus::ok;
  }
  if (!block) {
    ChanAccess::unlock(c);
    return ChanStatus::would_block;
  }
  Waiter w;
  set_claimers_for(w, deadline, interrupt);
  ChanNode node{};
  node.waiter = &w;
  node.elem = elem;
  ChanAccess::sendq(c).push(&node);
  ParkOptions opts;
  opts.unlock = &SpinLock::unlock_fn;
  opts.unlock_arg = &ChanAccess::lock(c);
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason r = park(w, WaitSite{WaitReason::chan_send, &c, where}, opts);
  if (r == WakeReason::notified) {
    // A receiver (success) or close (failure) completed us and unlinked the node.
    if (!node.success) throw_send_on_closed();
    return ChanStatus::ok;
  }
  // Timed out or cancelled: withdraw, unless a partner that lost the claim already did.
  ChanAccess::lock(c).lock();
  if (node.queued) ChanAccess::sendq(c).remove(&node);
  ChanAccess::unlock(c);
  return gave_up(r);
}

// chan_recv from the channel's lock on: the ring's end has been tried (or there is none).
ChanStatus recv_locked_path(ChanCore& c, void* out, PutFn put, bool block, TimePoint deadline,
                            const Interrupt* interrupt, const std::source_location& where) {
  ChanAccess::lock(c).lock();
  Waiter* wake = nullptr;
  bool got_value = false;
  if (ChanAccess::try_recv_locked(c, out, put, &wake, &got_value)) {
    ChanAccess::unlock(c);
    if (wake != nullptr) wake->ready();
    return got_value ? ChanStatus::ok : ChanStatus::closed;
  }
  if (!block) {
    ChanAccess::unlock(c);
    return ChanStatus::would_block;
  }
  Waiter w;
  set_claimers_for(w, deadline, interrupt);
  ChanNode node{};
  node.waiter = &w;
  node.elem = out;
  node.put = put;
  ChanAccess::recvq(c).push(&node);
  ParkOptions opts;
  opts.unlock = &SpinLock::unlock_fn;
  opts.unlock_arg = &ChanAccess::lock(c);
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason r = park(w, WaitSite{WaitReason::chan_recv, &c, where}, opts);
  if (r == WakeReason::notified) return node.success ? ChanStatus::ok : ChanStatus::closed;
  ChanAccess::lock(c).lock();
  if (node.queued) ChanAccess::recvq(c).remove(&node);
  ChanAccess::unlock(c);
  return gave_up(r);
}

}  // namespace

ChanStatus chan_send(ChanCore* cp, void* elem, bool block, TimePoint deadline,
                     const Interrupt* interrupt, const std::source_location& where) {
  if (cp == nullptr) return park_forever(WaitReason::nil_chan, block, deadline, interrupt, where);
  if (ChanAccess::buffered(*cp)) {
    const Ring::Fast r = Ring(*cp).try_push(elem);
    if (r == Ring::Fast::done) return ChanStatus::ok;  // nobody was waiting: nobody to wake
    if (r == Ring::Fast::would_block && !block) return ChanStatus::would_block;
  }
  return send_locked_path(*cp, elem, block, deadline, interrupt, where);
}

ChanStatus chan_recv(ChanCore* cp, void* out, PutFn put, bool block, TimePoint deadline,
                     const Interrupt* interrupt, const std::source_location& where) {
  if (cp == nullptr) return park_forever(WaitReason::nil_chan, block, deadline, interrupt, where);
  if (ChanAccess::buffered(*cp)) {
    const Ring::Fast r = Ring(*cp).try_pop(out, put);
    if (r == Ring::Fast::done) return ChanStatus::ok;
    if (r == Ring::Fast::would_block && !block) return ChanStatus::would_block;
  }
  return recv_locked_path(*cp, out, put, block, deadline, interrupt, where);
}

// Not inlined, LTO or not: inlined into a caller's send loop (GCC's LTO does), the ring's
// fast path made that loop slower, not faster (A/B at 1 worker, medians of 7: mpmc 23.1 vs
// 20.8 ns, spsc 19.8 vs 18.9).
[[gnu::noinline]] bool chan_send_fast(ChanCore& c, void* elem) noexcept {
  return Ring(c).try_push(elem) == Ring::Fast::done;
}

[[gnu::noinline]] bool chan_recv_fast(ChanCore& c, void* out, PutFn put) noexcept {
  return Ring(c).try_pop(out, put) == Ring::Fast::done;
}

void chan_send_after_fast(ChanCore* c, void* elem, const std::source_location& where) {
  if (c == nullptr) {
    (void)park_forever(WaitReason::nil_chan, true, kNoDeadline, nullptr, where);
    return;
  }
  (void)send_locked_path(*c, elem, true, kNoDeadline, nullptr, where);
}

void chan_recv_after_fast(ChanCore* c, void* out, PutFn put, const std::source_location& where) {
  if (c == nullptr) {
    (void)park_forever(WaitReason::nil_chan, true, kNoDeadline, nullptr, where);
    return;
  }
  (void)recv_locked_path(*c, out, put, true, kNoDeadline, nullptr, where);
}

namespace {

// Waiters claimed by closes, readied together once no channel lock is held: each is readied
// while its waiter is still in cache, and the fiber records of the next few are fetched
// meanwhile (a channel that a million fibers wait on is a million cold stacks; so are a
// hundred thousand channels with one waiter each, as a wide context cancel closes).
class CloseBatch {
 public:
  static constexpr std::size_t kSize = 64;
  [[nodiscard]] bool full() const noexcept { return n_ == kSize; }
  void add(Waiter* w) noexcept { waiters_[n_++] = w; }
  void ready_all() noexcept {
    Waiter::ready_all(waiters_, n_);
    n_ = 0;
  }

 private:
  std::size_t n_ = 0;
  Waiter* waiters_[kSize];
};

// Whether a fiber's close() may yield between the batches it readies (close_locked). Never
// inside a catch block or during unwinding: libstdc++ keeps the exception being handled per
// thread, and the closer may resume on another worker.
bool closer_may_switch() noexcept {
  return in_fiber() && std::uncaught_exceptions() == 0 && std::current_exception() == nullptr;
}

// Readies the waiters a close claimed under its lock (close_locked), a batch at a time.
void ready_claimed(ChanNode* claimed, CloseBatch& batch) noexcept {
  while (claimed != nullptr) {
    ChanNode* next = claimed->next;  // read before ready(): the node dies with its fiber's frame
    batch.add(claimed->waiter);
    if (batch.full()) batch.ready_all();
    claimed = next;
  }
}

// Closes one channel (its lock held on entry, released on return), adding its receivers to
// `batch` and readying its senders. False if it was closed already. `from_close`: close() of
// this one channel (not a context's closes), which may yield between batches.
bool close_locked(ChanCore& c, CloseBatch& batch, bool from_close) {
  if (ChanAccess::closed(c)) {
    ChanAccess::unlock(c);
    return false;
  }
  ChanAccess::set_closed(c);
  if (ChanAccess::buffered(c)) Ring(c).enter_slow();  // for good: no end operation after a close
  // Waiters claimed under the lock and readied once it is dropped (Go's glist), linked through
  // their nodes (dequeue() leaves `next` null): a claimed waiter cannot run before its ready().
  ChanNode* claimed = nullptr;
  ChanNode** claimed_end = &claimed;
  auto claim_for_later = [&claimed_end](ChanNode* n) {
    *claimed_end = n;
    claimed_end = &n->next;
  };
  // Every blocked sender fails, all of them under this one hold of the lock: otherwise a
  // receiver arriving later could take the value of a sender still queued and complete a send
  // that this close must fail.
  while (ChanNode* n = ChanAccess::sendq(c).dequeue()) {
    n->success = false;
    n->waiter->tag = n->case_index;
    claim_for_later(n);
  }
  // Blocked receivers can now be ended by this close (nobody sends on a closed channel) and by
  // nothing else, unless they wait for more: another select case, a deadline, an interrupt.
  // Go's close ends them all at once. So while any of those is queued, every receiver is
  // claimed before the lock is dropped, with the senders, and readied after.
  // Otherwise (others() stays 0: nobody queues on a closed channel) a receiver left queued can
  // be claimed by a holder of this lock only, so they are claimed a batch at a time, each batch
  // readied with the lock dropped while its nodes are still in cache.
  //
  // A fiber's close() also yields after each full batch it readies. A yield takes from the
  // global queue first, where a long close's batches spill once its worker's run queue is
  // full: so that worker runs woken receivers during the walk too, instead of only walking
  // while the other workers run them all. A million receivers of one close at 2 workers: woken
  // and joined in 8% less time (A/B medians of 7: 242 vs 222 ms); at 1 worker, no change.
  // Not in the at-once case (a yield there would leave receivers queued that others could
  // end), nor inside a catch block (closer_may_switch).
  WaitQueue& receivers = ChanAccess::recvq(c);
  const bool at_once = receivers.others() > 0;
  for (;;) {
    ChanNode* n = receivers.dequeue();
    if (n != nullptr) {
      __builtin_prefetch(n->ahead, 1);  // null or stale: prefetches never fault
      __builtin_prefetch(n->ahead_waiter, 1);
      n->success = false;
      n->waiter->tag = n->case_index;
      if (at_once) {
        claim_for_later(n);
        continue;
      }
      batch.add(n->waiter);
    }
    if (n == nullptr || batch.full()) {
      ChanAccess::unlock(c);
      ready_claimed(std::exchange(claimed, nullptr), batch);
      claimed_end = &claimed;
      if (n == nullptr) return true;
      batch.ready_all();
      if (from_close && closer_may_switch()) this_fiber::yield();
      ChanAccess::lock(c).lock();
    }
  }
}

// Closes cores[0, n), readying every waiter they had; `from_close` as for close_locked.
void close_channels(ChanCore* const* cores, std::size_t n, bool from_close) {
  CloseBatch batch;
  constexpr std::size_t kAhead = 4;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(cores[i + kAhead], 1);
    ChanAccess::lock(*cores[i]).lock();
    if (!close_locked(*cores[i], batch, from_close)) {
      batch.ready_all();  // claimed waiters must run, whatever this throw leaves undone
      throw ClosedChannelError("close of closed channel");
    }
  }
  batch.ready_all();
}

}  // namespace

void chan_close_all(ChanCore* const* cores, std::size_t n) {
  close_channels(cores, n, /*from_close=*/false);
}

void chan_close(ChanCore* cp) {
  if (cp == nullptr) throw ChanError("close of nil channel");
  close_channels(&cp, 1, /*from_close=*/true);
}

bool chan_offer(ChanCore* cp, void* elem) noexcept {
  if (cp == nullptr) return false;
  ChanCore& c = *cp;
  if (ChanAccess::buffered(c)) {
    const Ring::Fast r = Ring(c).try_push(elem);
    if (r != Ring::Fast::slow) return r == Ring::Fast::done;
  }
  ChanAccess::lock(c).lock();
  Waiter* wake = nullptr;
  const bool sent = !ChanAccess::closed(c) && ChanAccess::try_send_locked(c, elem, &wake);
  // Leaves the ring in its slow mode (the next locked operation's unlock ends it): returning it
  // to end operations takes a reference that could turn out to be the channel's last, and its
  // destruction cancels the very timer whose fire, under the heap lock, called us.
  ChanAccess::lock(c).unlock();
  if (wake != nullptr) wake->ready();
  return sent;
}

bool ChanAccess::drain_locked(ChanCore& c) noexcept {
  if (c.ends_ == nullptr) return false;
  Ring ring(c);
  ring.enter_slow();
  const bool any = ring.count() > 0;
  while (ring.count() > 0) ring.pop_locked(nullptr, nullptr);
  return any;
}

bool chan_drain(ChanCore* cp) noexcept {
  if (cp == nullptr) return false;
  ChanAccess::lock(*cp).lock();
  const bool any = ChanAccess::drain_locked(*cp);
  ChanAccess::unlock(*cp);
  return any;
}

}  // namespace detail
}  // namespace spindle
