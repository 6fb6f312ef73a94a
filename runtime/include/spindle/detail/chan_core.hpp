// The type-erased channel core behind Chan<T>, Sender<T>, Receiver<T> and select (Go's hchan).
//
// Everything that does not depend on the element type lives in src/chan/ and is compiled once;
// the element is handled through a small table of operations (ElemOps) and, on the receiving
// side, a `put` function that move-constructs the value where the receiver wants it (straight
// into its std::optional<T>, so a received value is moved exactly once).
//
// A buffered channel's values sit in a ring of slots with per-slot stamps (Vyukov's bounded
// queue, as crossbeam's array channel lays it out): while nobody is parked on the channel and it
// is open, a send takes only the ring's tail lock and a receive only its head lock, never the
// channel's, so a producer and a consumer on two cores share only the slots' cache lines.
// Parking needs the channel's lock: an operation that must wait takes it and sets the slow
// flag of both ends (src/chan/ring.hpp), which turns every end operation away from then on, and
// so every operation goes through the channel's lock while a waiter is queued, exactly as Go's
// channels do. The flags are cleared when the last waiter leaves; a closed channel keeps them.
//
// Invariants (under ChanCore::lock_):
//  * At least one of sendq_ and recvq_ is empty, except when one select has both a send and a
//    receive case on the same unbuffered channel and is blocked on it (Go's chan.go says the same).
//  * Outside the lock the slow flags of head and tail are equal; a queued waiter or a close
//    implies they are set. With them set, only the lock holder touches the ring.
//  * A non-empty ring implies recvq_ is empty; a ring not full implies sendq_ is empty.
//  * A closed channel has an empty sendq_ (close fails every blocked sender) and, once the ring
//    is empty, an empty recvq_ (close wakes every blocked receiver).
//  * A queued ChanNode lives on its waiting fiber's stack. Whoever unlinks it while holding the
//    lock may touch it; after Waiter::ready() nobody touches it (the fiber may return at once).
//
// Lock order: the timer heap lock (time channels fire under it), then channel locks; a select
// holds several channel locks at once, always taken in increasing address order; then a ring's
// end locks, one at a time. Nothing takes the timer heap lock while holding a channel lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <source_location>
#include <type_traits>
#include <utility>

#include <spindle/clock.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

namespace spindle {

// The outcome of a channel operation that can end without transferring a value.
enum class ChanStatus : std::uint8_t {
  ok,           // the value was sent / received
  closed,       // receive: the channel is closed and drained (a send on a closed channel throws)
  would_block,  // try_ forms and a select with a default case: nothing was ready
  timeout,      // _for / _until forms: the deadline passed first
  canceled,     // context-aware forms: the interrupt source (a Context) fired first
};

[[nodiscard]] const char* to_string(ChanStatus s) noexcept;

namespace detail {

// How the core moves, destroys and discards elements it does not know the type of. Every
// operation is noexcept: Chan<T> requires a nothrow move constructor (see chan.hpp), so no
// element operation can fail while a channel lock is held.
struct ElemOps {
  std::size_t size;
  std::size_t align;
  void (*move_construct)(void* dst, void* src) noexcept;  // dst raw; src stays, moved-from
  void (*destroy)(void* p) noexcept;
  void (*discard)(void* src) noexcept;  // take src's value and drop it (src stays, moved-from)
};

template <class T>
inline constexpr ElemOps kElemOps{
    sizeof(T),
    alignof(T),
    [](void* dst, void* src) noexcept { ::new (dst) T(std::move(*static_cast<T*>(src))); },
    [](void* p) noexcept { static_cast<T*>(p)->~T(); },
    [](void* src) noexcept { [[maybe_unused]] T dropped(std::move(*static_cast<T*>(src))); },
};

// Where a receive puts its value: move-construct the receiver's copy at `out` from `src`.
using PutFn = void (*)(void* out, void* src) noexcept;

template <class T>
void put_optional(void* out, void* src) noexcept {
  static_cast<std::optional<T>*>(out)->emplace(std::move(*static_cast<T*>(src)));
}

// One blocked operation on one channel (Go's sudog). A select has one per channel case, all
// pointing at the same Waiter; whoever claims the Waiter first wins and records case_index in
// Waiter::tag.
// Trivially constructible, as SelectCase is (below): a blocking send or receive value-
// initializes its node (`ChanNode node{}`); select_impl writes every field it later reads.
struct ChanNode {
  Waiter* waiter;
  ChanNode* next;
  ChanNode* prev;
  void* elem;                   // send: the sender's value; receive: `out` for put (null: discard)
  PutFn put;                    // receive only
  std::uint32_t case_index;
  bool queued;
  bool success;                 // set by the waker: true = a value moved, false = closed
  bool one_lock;                // set by WaitQueue::push: only this queue's lock holders claim it
  // Prefetch hints, set when the node WaitQueue::kAhead places behind this one is queued: a
  // close walking a long queue (each node on its own cold stack) fetches that far ahead instead
  // of one node at a time. Stale once that node withdraws: only ever prefetched, never read.
  const ChanNode* ahead;
  const Waiter* ahead_waiter;
};

// FIFO of blocked operations, intrusive through ChanNode::next/prev.
class WaitQueue {
 public:
  static constexpr int kAhead = 8;
  [[nodiscard]] bool empty() const noexcept { return front() == nullptr; }
  [[nodiscard]] const ChanNode* front() const noexcept {
    return first_.load(std::memory_order_relaxed);
  }
  // Without the lock: a hint, stale by the time it is acted on (select's single-lock tries).
  [[nodiscard]] bool looks_empty() const noexcept { return empty(); }
  void push(ChanNode* n) noexcept;
  void remove(ChanNode* n) noexcept;
  // Unlinks nodes from the front until one whose Waiter it claims (WakeReason::notified); nodes
  // whose Waiter was already claimed (timed out, cancelled, or another case of their select won)
  // are unlinked and skipped, so a value is never handed to an operation that already gave up.
  ChanNode* dequeue() noexcept;
  // Queued nodes whose Waiter others than this queue's lock holders may claim (a select, a
  // deadline, an interrupt).
  [[nodiscard]] std::uint32_t others() const noexcept { return others_; }

 private:
  // Atomic only so that looks_empty() may read it without the lock; every write is under the
  // lock, and relaxed accesses compile to plain moves.
  std::atomic<ChanNode*> first_{nullptr};
  ChanNode* last_ = nullptr;
  std::uint32_t others_ = 0;
};

class ChanCore {
 public:
  // Allocates a channel with room for `cap` elements (one allocation: header + ring buffer).
  // Throws ChanError("makechan: size out of range") if that size overflows.
  static ChanCore* create(const ElemOps* ops, std::size_t cap);

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy();
  }

  [[nodiscard]] std::size_t len() const noexcept;  // a racy snapshot, as Go's len(ch)
  [[nodiscard]] std::size_t cap() const noexcept { return cap_; }
  [[nodiscard]] bool buffered() const noexcept { return ends_ != nullptr; }
  [[nodiscard]] const ElemOps* ops() const noexcept { return ops_; }

  // For time channels (src/time): `fn(arg)` runs once, just before the channel is freed, so the
  // timer that feeds the channel can be cancelled before its memory goes away.
  void set_on_destroy(void (*fn)(void*) noexcept, void* arg) noexcept {
    on_destroy_ = fn;
    on_destroy_arg_ = arg;
  }

 private:
  friend struct ChanAccess;  // src/chan: the operations below are written against the fields
  ChanCore(const ElemOps* ops, std::size_t cap) noexcept : ops_(ops), cap_(cap) {}
  void destroy() noexcept;

  // A buffered channel's ring: positions are lap * one_lap_ + index (one_lap_ a power of two
  // above cap_), so stepping needs no division. Each end on its own line: its lock, taken by
  // that end's operations; its slow flag (above), written holding both that lock and the
  // channel's, read holding either; its position, written holding either, read racily by
  // len().
  struct alignas(64) RingEnd {
    SpinLock lock;
    std::atomic<bool> slow{false};
    std::atomic<std::uint64_t> pos{0};
  };
  struct RingLayout {
    std::size_t ends_offset, stamps_offset, values_offset, bytes, align;
  };
  static RingLayout ring_layout(const ElemOps* ops, std::size_t cap);

  SpinLock lock_;
  std::atomic<bool> closed_{false};  // written under lock_; read racily by select's first pass
  WaitQueue sendq_;
  WaitQueue recvq_;
  std::atomic<std::uint32_t> refs_{1};
  const ElemOps* const ops_;
  const std::size_t cap_;
  RingEnd* ends_ = nullptr;  // buffered: [0] head (receivers), [1] tail (senders), own lines
  // Buffered: slot i is stamps_[i] and the element at values_ + i * ops_->size. Stamps apart
  // from values: a claim finds its stamp without a multiply in its chain of dependent loads.
  std::atomic<std::uint64_t>* stamps_ = nullptr;
  std::byte* values_ = nullptr;
  std::uint64_t one_lap_ = 0;
  void (*on_destroy_)(void*) noexcept = nullptr;
  void* on_destroy_arg_ = nullptr;
};

// Blocking or not (`block`), with a deadline (kNoDeadline: none) and an optional interrupt.
// A null channel is Go's nil channel: never ready (blocks until the deadline or interrupt).
//
// chan_send moves from *elem only when it returns ok. Returns ok, would_block (!block), timeout
// or canceled. Throws ClosedChannelError("send on closed channel") when the channel is closed,
// including when the close happens while the sender is blocked.
ChanStatus chan_send(ChanCore* c, void* elem, bool block, TimePoint deadline,
                     const Interrupt* interrupt, const std::source_location& where);

// chan_recv calls put(out, value) (out == null: drops the value) only when it returns ok.
// Returns ok, closed (closed and drained), would_block (!block), timeout or canceled.
ChanStatus chan_recv(ChanCore* c, void* out, PutFn put, bool block, TimePoint deadline,
                     const Interrupt* interrupt, const std::source_location& where);

// The blocking send() and recv() (and the range-for) with no deadline and no interrupt. A
// buffered channel's ring end is tried first by a small function of its own (inside chan_send
// the same path paid for that function's stack frame); when it cannot complete there (full or
// empty, a waiter queued, closed), the *_after_fast half takes the channel's lock without
// trying the end again. Unbuffered and nil channels go straight to that half.
bool chan_send_fast(ChanCore& c, void* elem) noexcept;
bool chan_recv_fast(ChanCore& c, void* out, PutFn put) noexcept;
void chan_send_after_fast(ChanCore* c, void* elem, const std::source_location& where);
void chan_recv_after_fast(ChanCore* c, void* out, PutFn put, const std::source_location& where);

inline void chan_send_blocking(ChanCore* c, void* elem, const std::source_location& where) {
  if (c != nullptr && c->buffered() && chan_send_fast(*c, elem)) return;
  chan_send_after_fast(c, elem, where);
}

inline void chan_recv_blocking(ChanCore* c, void* out, PutFn put,
                               const std::source_location& where) {
  if (c != nullptr && c->buffered() && chan_recv_fast(*c, out, put)) return;
  chan_recv_after_fast(c, out, put, where);
}

// Throws ChanError("close of nil channel") / ClosedChannelError("close of closed channel").
void chan_close(ChanCore* c);

// For time channels, called from a timer's fire (under the timer heap lock): sends *elem if
// that can be done without blocking; never throws (false if full, closed or nil).
bool chan_offer(ChanCore* c, void* elem) noexcept;
// Drops every buffered value; true if there was one (Timer::stop/reset, Go 1.23 semantics).
bool chan_drain(ChanCore* c) noexcept;

// --- select -------------------------------------------------------------------------------------

// One channel case of a select. chan == null: a nil channel, never ready.
// Trivially constructible and left uninitialized where it is declared (Select<N>, select()):
// zeroing two cases took 7% of a select over unbuffered channels. The registering side writes
// chan, elem, put and is_send; select_impl writes the scratch and the node before reading them.
struct SelectCase {
  ChanCore* chan;
  void* elem;  // send: the value, moved from only if this case wins; receive: `out`
  PutFn put;   // receive only
  bool is_send;
  // Scratch owned by select_impl: a random poll order and the lock order (by address), kept
  // in the cases themselves so that a select allocates nothing.
  std::uint16_t poll_order;
  std::uint16_t lock_order;
  ChanNode node;
};
static_assert(std::is_trivially_default_constructible_v<SelectCase>);

struct SelectResult {
  int index;          // the case that proceeded, or -1 (would_block, timeout, canceled)
  ChanStatus status;  // ok (value sent/received), closed (receive case on a closed channel),
                      // would_block (!block and nothing ready), timeout, canceled
};

// Go's selectgo: if any case can proceed, picks one uniformly at random; otherwise returns
// would_block when !block, or parks on every case at once until one proceeds, the deadline
// passes or the interrupt fires; every other registration is withdrawn before it returns.
// Throws ClosedChannelError if the chosen case is a send on a closed channel. n <= 65535.
SelectResult select_impl(SelectCase* cases, int n, bool block, TimePoint deadline,
                         const Interrupt* interrupt, const std::source_location& where);

// A fast per-thread generator (xorshift64*) for select's random choice: 64 random bits.
std::uint64_t fast_rand64() noexcept;

// --- handles ------------------------------------------------------------------------------------

// An owning, copyable reference to a ChanCore (null: the nil channel).
class ChanRef {
 public:
  ChanRef() noexcept = default;
  explicit ChanRef(ChanCore* adopt) noexcept : c_(adopt) {}
  ChanRef(const ChanRef& o) noexcept : c_(o.c_) {
    if (c_ != nullptr) c_->retain();
  }
  ChanRef(ChanRef&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  ChanRef& operator=(const ChanRef& o) noexcept {
    ChanRef(o).swap(*this);
    return *this;
  }
  ChanRef& operator=(ChanRef&& o) noexcept {
    ChanRef(std::move(o)).swap(*this);
    return *this;
  }
  ~ChanRef() {
    if (c_ != nullptr) c_->release();
  }
  void swap(ChanRef& o) noexcept { std::swap(c_, o.c_); }
  [[nodiscard]] ChanCore* get() const noexcept { return c_; }

 private:
  ChanCore* c_ = nullptr;
};

}  // namespace detail
}  // namespace spindle
