// select: Go's selectgo (select.go), parking on every case at once.
//
//  1. Poll order: a uniformly random permutation of the non-nil cases (so the choice among
//     ready cases is uniform). Lock order: the cases sorted by channel address; a channel listed
//     in several cases is locked once. Every select takes its locks in address order, so two
//     selects over the same channels cannot deadlock.
//     (Before taking every lock, cases that look ready without a lock are tried one at a time,
//     in poll order, under their own lock: see 1b below.)
//  2. With every lock held, look at the cases in poll order; the first that can proceed wins.
//  3. Otherwise (and if blocking) enqueue one ChanNode per case, all pointing at one Waiter, and
//     park; the locks are released after the switch. The first partner to claim the Waiter
//     (WaitQueue::dequeue) completes its case and records the case index in Waiter::tag; a
//     deadline or interrupt claims it instead. Partners that lose the claim skip the node.
//  4. Woken: lock everything again and withdraw every node still queued (a partner that lost
//     the claim may have unlinked some already), so nothing refers to this select when it
//     returns. The winning case's outcome is in its node (success: a value moved; else closed).
#include <algorithm>
#include <chrono>
#include <cstdint>

#include "chan/chan_internal.hpp"
#include "chan/ring.hpp"

namespace spindle::detail {

namespace {

// The per-thread generator state. Reached only through the non-inlined fast_rand64 and never
// held across a park (a fiber may resume on another thread: SEMANTICS.md).
thread_local std::uint64_t t_rand_state = 0;

struct SelectLocks {
  SelectCase* cases;
  int n;  // non-nil cases, sorted by address through lock_order
};

// Locks the channels of every case but `skip`, in address order, each once.
void lock_all(const SelectLocks& s, int skip = -1) noexcept {
  ChanCore* prev = nullptr;
  for (int k = 0; k < s.n; ++k) {
    if (s.cases[k].lock_order == skip) continue;
    ChanCore* c = s.cases[s.cases[k].lock_order].chan;
    if (c != prev) ChanAccess::lock(*c).lock();
    prev = c;
  }
}

// Unlocks in reverse address order, reading nothing of `s` after the last unlock (Go's
// selunlock: once the last lock is free the select may be woken and return).
void unlock_all(const SelectLocks& s) noexcept {
  SelectCase* cases = s.cases;
  for (int k = s.n - 1; k >= 0; --k) {
    ChanCore* c = cases[cases[k].lock_order].chan;
    if (k > 0 && cases[cases[k - 1].lock_order].chan == c) continue;
    ChanAccess::unlock(*c);
  }
}

void unlock_all_fn(void* arg) noexcept {
  const SelectLocks s = *static_cast<SelectLocks*>(arg);
  unlock_all(s);
}

// Step 4 of select: with the channels of every case but `winner` (-1: none won) locked, in
// address order, unlinks the nodes still queued. Only the select itself calls this, so it may
// read `s` after its last unlock (unlike unlock_all).
void withdraw_all_but(const SelectLocks& s, int winner) noexcept {
  SelectCase* cases = s.cases;
  lock_all(s, winner);
  for (int k = 0; k < s.n; ++k) {
    SelectCase& sc = cases[cases[k].lock_order];
    if (cases[k].lock_order == winner || !sc.node.queued) continue;
    if (sc.is_send) {
      ChanAccess::sendq(*sc.chan).remove(&sc.node);
    } else {
      ChanAccess::recvq(*sc.chan).remove(&sc.node);
    }
  }
  ChanCore* prev = nullptr;
  for (int k = 0; k < s.n; ++k) {
    const int i = cases[k].lock_order;
    if (i == winner) continue;
    if (cases[i].chan != prev) ChanAccess::unlock(*cases[i].chan);
    prev = cases[i].chan;
  }
}

// Tries case `i` with its channel locked; on success drops the locks (`unlock`), readies the
// partner it completed with and sets *out. A send on a closed channel throws, locks dropped.
template <class Unlock>
bool try_case_locked(SelectCase& sc, int i, Unlock unlock, SelectResult* out) {
  ChanCore& c = *sc.chan;
  Waiter* wake = nullptr;
  ChanStatus status = ChanStatus::ok;
  if (sc.is_send) {
    if (ChanAccess::closed(c)) {
      unlock();
      throw_send_on_closed();
    }
    if (!ChanAccess::try_send_locked(c, sc.elem, &wake)) return false;
  } else {
    bool got = false;
    if (!ChanAccess::try_recv_locked(c, sc.elem, sc.put, &wake, &got)) return false;
    if (!got) status = ChanStatus::closed;
  }
  unlock();
  if (wake != nullptr) wake->ready();
  *out = {i, status};
  return true;
}

}  // namespace

[[gnu::noinline]] std::uint64_t fast_rand64() noexcept {
  std::uint64_t x = t_rand_state;
  if (x == 0) {
    // Seed per thread from its address and the clock; never zero.
    x = reinterpret_cast<std::uintptr_t>(&t_rand_state) ^
        static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()) ^
        0x9E3779B97F4A7C15ull;
    if (x == 0) x = 1;
  }
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  t_rand_state = x;
  return x * 0x2545F4914F6CDD1Dull;  // xorshift64*: the multiply mixes every output bit
}

SelectResult select_impl(SelectCase* cases, int n, bool block, TimePoint deadline,
                         const Interrupt* interrupt, const std::source_location& where) {
  // 1. Poll order over the non-nil cases (inside-out Fisher-Yates), then lock order. One 64-bit
  // draw serves four cases (16 bits each, multiply-shift: bias below m/65536); the generator is
  // a non-inlined call (thread_local), so this saves most of the calls for small selects.
  int m = 0;
  std::uint64_t bits = 0;
  int bits_left = 0;
  for (int i = 0; i < n; ++i) {
    if (cases[i].chan == nullptr) continue;  // a nil channel is never ready
    if (bits_left == 0) {
      bits = fast_rand64();
      bits_left = 4;
    }
    const auto j = static_cast<std::uint32_t>(((bits >> 48) * static_cast<std::uint64_t>(m + 1)) >> 16);
    bits <<= 16;
    --bits_left;
    if (j != static_cast<std::uint32_t>(m)) cases[m].poll_order = cases[j].poll_order;
    cases[j].poll_order = static_cast<std::uint16_t>(i);
    ++m;
  }
  if (m == 0) {
    const ChanStatus st = park_forever(n == 0 ? WaitReason::select_no_cases : WaitReason::select,
                                       block, deadline, interrupt, where);
    return {-1, st};
  }
  // 1b. Go's selectgo locks every channel before it looks at any. Here the cases are first
  // tried one at a time, in poll order: a buffered one through its ring's ends (ring.hpp); one
  // that looks ready without its lock (a buffered ring in its slow mode, a waiter queued or
  // closed, whose counts say it can proceed; an unbuffered channel with a partner parked, or
  // closed) under its own lock alone. A select that finds a partner then costs what a plain
  // send or receive costs, instead of holding (and first waiting for) every channel's lock
  // while it looks: over two buffered channels fed from another worker, each select waited on
  // both producers' locks; over two unbuffered ones, each took two locks where one would do.
  // A case passed over here was seen not ready at that moment, as step 2 would have seen it.
  for (int k = 0; k < m; ++k) {
    const int i = cases[k].poll_order;
    SelectCase& sc = cases[i];
    ChanCore& c = *sc.chan;
    if (ChanAccess::buffered(c)) {
      Ring ring(c);
      const Ring::Fast r = sc.is_send ? ring.try_push(sc.elem) : ring.try_pop(sc.elem, sc.put);
      if (r == Ring::Fast::done) return {i, ChanStatus::ok};
      if (r == Ring::Fast::would_block) continue;
    }
    if (!ChanAccess::looks_ready(c, sc.is_send)) continue;
    ChanAccess::lock(c).lock();
    SelectResult won;
    if (try_case_locked(sc, i, [&c] { ChanAccess::unlock(c); }, &won)) return won;
    ChanAccess::unlock(c);
  }

  // Insertion sort by address: selects are small (Go uses a heap sort for its large ones).
  for (int k = 0; k < m; ++k) {
    const std::uint16_t i = cases[k].poll_order;
    int p = k;
    while (p > 0 && std::less<ChanCore*>()(cases[i].chan, cases[cases[p - 1].lock_order].chan)) {
      cases[p].lock_order = cases[p - 1].lock_order;
      --p;
    }
    cases[p].lock_order = i;
  }

  SelectLocks locks{cases, m};
  lock_all(locks);

  // 2. Is any case ready now? Take the first in poll order.
  for (int k = 0; k < m; ++k) {
    const int i = cases[k].poll_order;
    SelectResult won;
    if (try_case_locked(cases[i], i, [&locks] { unlock_all(locks); }, &won)) return won;
  }
  if (!block) {
    unlock_all(locks);
    return {-1, ChanStatus::would_block};
  }

  // 3. Enqueue on every channel, in lock order, and park.
  Waiter w;
  if (deadline == kNoDeadline && interrupt == nullptr) {
    w.set_claimers(Waiter::Claimers::lock_holders);  // only holders of the locks it holds now
  }
  for (int k = 0; k < m; ++k) {
    const int i = cases[k].lock_order;
    SelectCase& sc = cases[i];
    ChanNode& node = sc.node;
    node.waiter = &w;
    node.elem = sc.elem;
    node.put = sc.put;
    node.case_index = static_cast<std::uint32_t>(i);
    node.success = false;
    if (sc.is_send) {
      ChanAccess::sendq(*sc.chan).push(&node);
    } else {
      ChanAccess::recvq(*sc.chan).push(&node);
    }
  }
  ParkOptions opts;
  opts.unlock = &unlock_all_fn;
  opts.unlock_arg = &locks;
  opts.deadline = deadline;
  opts.interrupt = interrupt;
  const WakeReason why = park(w, WaitSite{WaitReason::select, cases[0].chan, where}, opts);

  // 4. Withdraw every registration still queued. The winner's node was unlinked by its waker,
  // under its channel's lock: that channel is locked again only if another case uses it.
  const int winner = why == WakeReason::notified ? static_cast<int>(w.tag) : -1;
  withdraw_all_but(locks, winner);

  if (why != WakeReason::notified) {
    return {-1, why == WakeReason::timeout ? ChanStatus::timeout : ChanStatus::canceled};
  }
  const int i = static_cast<int>(w.tag);
  if (cases[i].node.success) return {i, ChanStatus::ok};
  if (cases[i].is_send) throw_send_on_closed();  // woken by close while offering a value
  return {i, ChanStatus::closed};
}

}  // namespace spindle::detail
