// Internals shared by the channel operations (chan.cpp) and select (select.cpp).
//
// ChanAccess is the one friend of ChanCore: the operations are free functions written against
// its fields. The *_locked helpers run with the channel's lock held and never block; a Waiter
// they return through `wake` has been claimed and must be readied after the lock is dropped.
#pragma once

#include <spindle/chan.hpp>
#include <spindle/detail/chan_core.hpp>

namespace spindle::detail {

struct ChanAccess {
  static SpinLock& lock(ChanCore& c) noexcept { return c.lock_; }
  static bool closed(const ChanCore& c) noexcept { return c.closed_.load(std::memory_order_relaxed); }
  static void set_closed(ChanCore& c) noexcept { c.closed_.store(true, std::memory_order_relaxed); }
  static bool buffered(const ChanCore& c) noexcept { return c.ends_ != nullptr; }
  // Drops the lock; a buffered channel with no waiter left, and open, returns to end
  // operations first (ring.hpp). Every unlock but the one a parking operation defers goes here.
  static void unlock(ChanCore& c) noexcept;
  // Without the lock, a hint for a buffered channel: could this receive or send proceed (or, a
  // send, find the channel closed)? Either answer may be stale by the time it is acted on.
  static bool looks_ready(const ChanCore& c, bool send) noexcept;

  // The ring's fields (ring.hpp).
  using RingEnd = ChanCore::RingEnd;
  static ChanCore::RingEnd* ends(ChanCore& c) noexcept { return c.ends_; }
  static std::atomic<std::uint64_t>* stamps(const ChanCore& c) noexcept { return c.stamps_; }
  static std::byte* values(const ChanCore& c) noexcept { return c.values_; }
  static std::uint64_t one_lap(const ChanCore& c) noexcept { return c.one_lap_; }
  static std::size_t cap(const ChanCore& c) noexcept { return c.cap_; }
  static const ElemOps* ops(const ChanCore& c) noexcept { return c.ops_; }
  static WaitQueue& sendq(ChanCore& c) noexcept { return c.sendq_; }
  static WaitQueue& recvq(ChanCore& c) noexcept { return c.recvq_; }

  // Completes a send of *elem if possible now: to a parked receiver (*wake set) or into the
  // buffer. The caller has checked that the channel is open. Buffered: sets the ring's slow flags
  // (the caller may queue a waiter next), which unlock() clears when it can.
  static bool try_send_locked(ChanCore& c, void* elem, Waiter** wake) noexcept;
  // Completes a receive if possible now: from a parked sender (*wake set), from the buffer, or
  // because the channel is closed and drained (*got_value = false).
  static bool try_recv_locked(ChanCore& c, void* out, PutFn put, Waiter** wake,
                              bool* got_value) noexcept;
  // Destroys every buffered value; true if there was one.
  static bool drain_locked(ChanCore& c) noexcept;
};

[[noreturn]] void throw_send_on_closed();

// Closes n non-nil channels, in order, as chan_close would one by one; their woken receivers
// are readied in batches across channels, so many closes overlap their cache misses. Throws
// ClosedChannelError at the first channel already closed (the later ones stay open).
void chan_close_all(ChanCore* const* cores, std::size_t n);

// A nil channel, or a select with no channel cases: only the deadline or the interrupt ends the
// wait (would_block at once when !block; else timeout or canceled). Out of line and cold: inlined
// into the blocking send and receive it gave their frames room for its Waiter and options, 136
// bytes that every fiber parked in a receive fetched again when it resumed.
[[gnu::cold, gnu::noinline]] ChanStatus park_forever(WaitReason why, bool block, TimePoint deadline,
                                                     const Interrupt* interrupt,
                                                     const std::source_location& where);

}  // namespace spindle::detail
