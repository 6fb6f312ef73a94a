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

#include <cstring>
#include <limits>

#include "chan/chan_internal.hpp"

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
    first_ = n;
  }
  last_ = n;
  n->queued = true;
}

void WaitQueue::remove(ChanNode* n) noexcept {
  if (n->prev != nullptr) {
    n->prev->next = n->next;
  } else {
    first_ = n->next;
  }
  if (n->next != nullptr) {
    n->next->prev = n->prev;
  } else {
    last_ = n->prev;
  }
  n->next = n->prev = nullptr;
  n->queued = false;
}

ChanNode* WaitQueue::dequeue() noexcept {
  while (ChanNode* n = first_) {
    remove(n);
    // A node whose Waiter is already claimed belongs to an operation that timed out, was
    // cancelled, or (a select) won on another case: it is waiting for our lock to withdraw.
    if (n->waiter->claim(WakeReason::notified)) return n;
  }
  return nullptr;
}

// --- ChanCore ---------------------------------------------------------------------------------

ChanCore* ChanCore::create(const ElemOps* ops, std::size_t cap) {
  const std::size_t align = std::max(alignof(ChanCore), ops->align);
  const std::size_t header = (sizeof(ChanCore) + ops->align - 1) / ops->align * ops->align;
  const std::size_t limit = std::numeric_limits<std::size_t>::max() / 2;  // Go: maxAlloc
  if (cap > (limit - header) / ops->size) throw ChanError("makechan: size out of range");
  void* mem = ::operator new(header + cap * ops->size, std::align_val_t(align));
  auto* buf = static_cast<std::byte*>(mem) + header;
  return ::new (mem) ChanCore(ops, cap, cap == 0 ? nullptr : buf);
}

void ChanCore::destroy() noexcept {
  if (on_destroy_ != nullptr) on_destroy_(on_destroy_arg_);
  // The last handle is gone, so nobody can be parked on the channel (a parked operation holds
  // a handle); only buffered values remain.
  auto& a = *this;
  std::size_t n = a.qcount_.load(std::memory_order_relaxed);
  for (std::size_t i = 0, x = a.recvx_; i < n; ++i, x = (x + 1 == a.cap_ ? 0 : x + 1)) {
    a.ops_->destroy(a.buf_ + x * a.ops_->size);
  }
  const std::size_t align = std::max(alignof(ChanCore), ops_->align);
  this->~ChanCore();
  ::operator delete(static_cast<void*>(this), std::align_val_t(align));
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
  if (c.qcount_.load(std::memory_order_relaxed) < c.cap_) {
    c.ops_->move_construct(slot(c, c.sendx_), elem);
    if (++c.sendx_ == c.cap_) c.sendx_ = 0;
    c.qcount_.store(c.qcount_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return true;
  }
  return false;
}

bool ChanAccess::try_recv_locked(ChanCore& c, void* out, PutFn put, Waiter** wake,
                                 bool* got_value) noexcept {
  if (ChanNode* s = c.sendq_.dequeue()) {
    if (c.cap_ == 0) {
      // Unbuffered: take the value straight from the parked sender's variable.
      if (out != nullptr) {
        put(out, s->elem);
      } else {
        c.ops_->discard(s->elem);
      }
    } else {
      // A sender is parked, so the buffer is full: take its head, and move the sender's value
      // into the slot just freed (the tail, since the ring is full), keeping FIFO order.
      void* head = slot(c, c.recvx_);
      if (out != nullptr) put(out, head);
      c.ops_->destroy(head);
      c.ops_->move_construct(head, s->elem);
      if (++c.recvx_ == c.cap_) c.recvx_ = 0;
      c.sendx_ = c.recvx_;
    }
    s->success = true;
    s->waiter->tag = s->case_index;
    *wake = s->waiter;
    *got_value = true;
    return true;
  }
  const std::size_t q = c.qcount_.load(std::memory_order_relaxed);
  if (q > 0) {
    void* head = slot(c, c.recvx_);
    if (out != nullptr) put(out, head);
    c.ops_->destroy(head);
    if (++c.recvx_ == c.cap_) c.recvx_ = 0;
    c.qcount_.store(q - 1, std::memory_order_relaxed);
    *got_value = true;
    return true;
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

ChanStatus chan_send(ChanCore* cp, void* elem, bool block, TimePoint deadline,
                     const Interrupt* interrupt, const std::source_location& where) {
  if (cp == nullptr) return park_forever(WaitReason::nil_chan, block, deadline, interrupt, where);
  ChanCore& c = *cp;
  ChanAccess::lock(c).lock();
  if (ChanAccess::closed(c)) {
    ChanAccess::lock(c).unlock();
    throw_send_on_closed();
  }
  Waiter* wake = nullptr;
  if (ChanAccess::try_send_locked(c, elem, &wake)) {
    ChanAccess::lock(c).unlock();
    if (wake != nullptr) wake->ready();
    return ChanStatus::ok;
  }
  if (!block) {
    ChanAccess::lock(c).unlock();
    return ChanStatus::would_block;
  }
  Waiter w;
  ChanNode node{};
  node.waiter = &w;
  node.elem = elem;
  ChanAccess::sendq(c).push(&node);
  ParkOptions opts;
  opts.unlock = &SpinLock::unlock_fn;
  opts.unlock_arg = &ChanAccess::lock(c);
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason r = park(w, WaitSite{WaitReason::chan_send, cp, where}, opts);
  if (r == WakeReason::notified) {
    // A receiver (success) or close (failure) completed us and unlinked the node.
    if (!node.success) throw_send_on_closed();
    return ChanStatus::ok;
  }
  // Timed out or cancelled: withdraw, unless a partner that lost the claim already did.
  ChanAccess::lock(c).lock();
  if (node.queued) ChanAccess::sendq(c).remove(&node);
  ChanAccess::lock(c).unlock();
  return gave_up(r);
}

ChanStatus chan_recv(ChanCore* cp, void* out, PutFn put, bool block, TimePoint deadline,
                     const Interrupt* interrupt, const std::source_location& where) {
  if (cp == nullptr) return park_forever(WaitReason::nil_chan, block, deadline, interrupt, where);
  ChanCore& c = *cp;
  ChanAccess::lock(c).lock();
  Waiter* wake = nullptr;
  bool got_value = false;
  if (ChanAccess::try_recv_locked(c, out, put, &wake, &got_value)) {
    ChanAccess::lock(c).unlock();
    if (wake != nullptr) wake->ready();
    return got_value ? ChanStatus::ok : ChanStatus::closed;
  }
  if (!block) {
    ChanAccess::lock(c).unlock();
    return ChanStatus::would_block;
  }
  Waiter w;
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
  const WakeReason r = park(w, WaitSite{WaitReason::chan_recv, cp, where}, opts);
  if (r == WakeReason::notified) return node.success ? ChanStatus::ok : ChanStatus::closed;
  ChanAccess::lock(c).lock();
  if (node.queued) ChanAccess::recvq(c).remove(&node);
  ChanAccess::lock(c).unlock();
  return gave_up(r);
}

void chan_close(ChanCore* cp) {
  if (cp == nullptr) throw ChanError("close of nil channel");
  chan_close_all(&cp, 1);
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
    constexpr std::size_t kAhead = 4;
    for (std::size_t i = 0; i < n_; ++i) {
      if (i + kAhead < n_) __builtin_prefetch(waiters_[i + kAhead]->fiber(), 1);
      waiters_[i]->ready();
    }
    n_ = 0;
  }

 private:
  std::size_t n_ = 0;
  Waiter* waiters_[kSize];
};

// Closes one channel (its lock held on entry, released on return), adding its receivers to
// `batch` and readying its senders. False if it was closed already.
bool close_locked(ChanCore& c, CloseBatch& batch) {
  if (ChanAccess::closed(c)) {
    ChanAccess::lock(c).unlock();
    return false;
  }
  ChanAccess::set_closed(c);
  // Every blocked sender fails, all of them under this one hold of the lock: otherwise a
  // receiver arriving later could take the value of a sender still queued and complete a send
  // that this close must fail. Claimed here, readied once the lock is dropped (Go's glist),
  // linked through their nodes: a claimed waiter cannot run before its ready().
  ChanNode* senders = nullptr;
  while (ChanNode* n = ChanAccess::sendq(c).dequeue()) {
    n->success = false;
    n->waiter->tag = n->case_index;
    n->next = senders;
    senders = n;
  }
  // Blocked receivers can now be woken only by this close (nobody sends on a closed channel),
  // or withdraw on their own: they are claimed a batch at a time, the lock dropped while a full
  // batch is readied.
  WaitQueue& receivers = ChanAccess::recvq(c);
  for (;;) {
    ChanNode* n = receivers.dequeue();
    if (n != nullptr) {
      if (const ChanNode* after = receivers.front()) {
        __builtin_prefetch(after->next);  // `after` itself was fetched one node ago
        __builtin_prefetch(after->waiter, 1);
      }
      n->success = false;
      n->waiter->tag = n->case_index;
      batch.add(n->waiter);
    }
    if (n == nullptr || batch.full()) {
      ChanAccess::lock(c).unlock();
      while (senders != nullptr) {
        ChanNode* s = senders;
        senders = s->next;  // read before ready(): the node dies with the woken fiber's frame
        s->waiter->ready();
      }
      if (n == nullptr) return true;
      batch.ready_all();
      ChanAccess::lock(c).lock();
    }
  }
}

}  // namespace

void chan_close_all(ChanCore* const* cores, std::size_t n) {
  CloseBatch batch;
  constexpr std::size_t kAhead = 4;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) __builtin_prefetch(cores[i + kAhead], 1);
    ChanAccess::lock(*cores[i]).lock();
    if (!close_locked(*cores[i], batch)) {
      batch.ready_all();  // claimed waiters must run, whatever this throw leaves undone
      throw ClosedChannelError("close of closed channel");
    }
  }
  batch.ready_all();
}

bool chan_offer(ChanCore* cp, void* elem) noexcept {
  if (cp == nullptr) return false;
  ChanCore& c = *cp;
  ChanAccess::lock(c).lock();
  Waiter* wake = nullptr;
  const bool sent = !ChanAccess::closed(c) && ChanAccess::try_send_locked(c, elem, &wake);
  ChanAccess::lock(c).unlock();
  if (wake != nullptr) wake->ready();
  return sent;
}

bool ChanAccess::drain_locked(ChanCore& c) noexcept {
  const std::size_t n = c.qcount_.load(std::memory_order_relaxed);
  for (std::size_t i = 0; i < n; ++i) {
    c.ops_->destroy(slot(c, c.recvx_));
    if (++c.recvx_ == c.cap_) c.recvx_ = 0;
  }
  c.qcount_.store(0, std::memory_order_relaxed);
  c.sendx_ = c.recvx_;
  return n > 0;
}

bool chan_drain(ChanCore* cp) noexcept {
  if (cp == nullptr) return false;
  ChanAccess::lock(*cp).lock();
  const bool any = ChanAccess::drain_locked(*cp);
  ChanAccess::lock(*cp).unlock();
  return any;
}

}  // namespace detail
}  // namespace spindle
