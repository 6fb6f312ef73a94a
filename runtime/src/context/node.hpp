// ContextNode: one node of the context tree behind spindle::Context (context.hpp).
//
// Shape (after Go's context.go): every node holds its parent (shared_ptr), so a node keeps its
// ancestors alive. Only cancelable nodes (kind cancel, deadline) have cancellation state; every
// node points at `governing`, its nearest cancelable node (itself if cancelable; null when it
// can never be done), and that node's state answers err(), cause(), done(), stop_token() and
// context-aware waits for it.
//
// Invariants:
//  * A cancelable node is linked into the children list of the governing node of its parent
//    (`registered_with`) from its creation until it is cancelled (by itself, by the parent, by
//    its deadline) or destroyed; `linked` is guarded by registered_with->mu. A cancel unlinks the
//    whole subtree, so a cancelled child never stays registered.
//  * err/cause are written once, under mu, before `done` is set (release); readers that see
//    done (acquire) may read them without the lock. They never change afterwards.
//  * Lock order: the timer heap's lock, then a parent's mu, then a child's mu (cancel
//    propagates downwards holding the chain of locks, as Go's does). A node's mu is never held
//    while calling the timer heap (whose fire runs under its own lock and may take ours), nor
//    while running user code (stop callbacks, after_func bodies, channel closes): cancel
//    collects those into a Deferred list and runs it after releasing every context lock.
//  * Waiters registered by a context-aware wait (detail::context_interrupt) are claimed and
//    readied under mu, so once disarm (which takes mu) has returned the node never touches it.
//  * The deadline timer's fire runs under the heap lock: it only takes a weak->strong reference
//    and spawns a fiber that cancels (Go's time.AfterFunc goroutine), so no cancellation work,
//    and no reference drop that could run a destructor, ever happens under the heap lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <system_error>
#include <unordered_set>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/detail/park.hpp>
#include <spindle/detail/spinlock.hpp>

#include "time/timer_heap.hpp"

namespace spindle::detail {

class Scheduler;

enum class NodeKind : std::uint8_t { todo, cancel, deadline, value, without_cancel };

// A registration in a cancelable node's children list: a child ContextNode or an after_func.
struct ChildLink {
  ChildLink* prev = nullptr;
  ChildLink* next = nullptr;
  bool linked = false;      // guarded by the list owner's mu
  bool is_after_func = false;
};

struct AfterFuncState : ChildLink {
  std::unique_ptr<AfterFuncBody> body;
  std::shared_ptr<ContextNode> node;     // the cancelable node it is registered on
  std::shared_ptr<AfterFuncState> self;  // the registration's reference while linked (node->mu)
  std::atomic<int> state{0};             // kPending -> kStarted | kStopped, once
  static constexpr int kPending = 0, kStarted = 1, kStopped = 2;
};

enum class TimerMode : std::uint8_t {
  none,   // no own deadline
  armed,  // deadline timer queued on timer_sched's heap
  lazy,   // no runtime when created (or created in another run): noticed by err() and waits
};

struct ContextNode : ChildLink, std::enable_shared_from_this<ContextNode> {
  ContextNode(NodeKind k, std::shared_ptr<ContextNode> p) noexcept;
  ~ContextNode();
  ContextNode(const ContextNode&) = delete;
  ContextNode& operator=(const ContextNode&) = delete;

  [[nodiscard]] bool cancelable() const noexcept {
    return kind == NodeKind::cancel || kind == NodeKind::deadline;
  }

  const NodeKind kind;
  const std::shared_ptr<ContextNode> parent;
  ContextNode* governing = nullptr;       // nearest cancelable node (self included)
  ContextNode* deadline_owner = nullptr;  // the deadline node our deadline comes from
  TimePoint deadline = kNoDeadline;

  // Value nodes.
  const void* key = nullptr;
  void* value = nullptr;
  void (*destroy_value)(void*) noexcept = nullptr;

  // Cancelable nodes.
  SpinLock mu;
  std::atomic<bool> done{false};
  std::error_code err;    // written once under mu before `done`
  std::error_code cause;  // likewise
  ContextNode* registered_with = nullptr;  // whose children list holds us (immutable once set)
  ChildLink children;                      // circular list sentinel; guarded by mu
  std::size_t nchildren = 0;               // guarded by mu
  Waiter* waiter1 = nullptr;               // context-aware waits; guarded by mu
  std::unordered_set<Waiter*> more_waiters;
  std::optional<std::stop_source> stop;    // created on first stop_token(); guarded by mu
  Chan<std::monostate> done_chan;          // created by the first done(); guarded by mu

  // Deadline nodes.
  std::error_code deadline_cause;
  std::atomic<TimerMode> timer_mode{TimerMode::none};
  TimerNode timer;
  Scheduler* timer_sched = nullptr;  // the heap the timer was queued on, and that run's id
  std::uint64_t timer_run = 0;
};

}  // namespace spindle::detail
