// The context tree: creation, cancellation and propagation, deadlines, values, after_func,
// stop_token, and the Interrupt that lets every blocking call honour a context.
// Invariants and lock order: node.hpp.
#include <spindle/context.hpp>

#include <algorithm>
#include <thread>

#include <spindle/runtime.hpp>

#include "chan/chan_internal.hpp"
#include "context/node.hpp"
#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

std::atomic<std::int64_t> g_live_nodes{0};

// --- the run a timer belongs to ---------------------------------------------------------------
// A TimerNode may only be cancelled on the heap it was queued on. A context can outlive the
// run() that armed its timer, and the next run's Scheduler may sit at the same address, so a
// run is identified by its scheduler and its main fiber's id (unique for the process).
std::uint64_t run_id(Scheduler* s) noexcept { return s->main_id_; }

// True if n's deadline timer is queued on the running runtime's heap (and so will fire).
bool timer_live(const ContextNode* n) noexcept {
  if (n->timer_mode.load(std::memory_order_acquire) != TimerMode::armed) return false;
  Scheduler* s = current_scheduler();
  return s != nullptr && s == n->timer_sched && run_id(s) == n->timer_run;
}

void cancel_timer(ContextNode* n) noexcept {
  if (timer_live(n)) n->timer_sched->timers_.cancel(&n->timer);
}

// --- spawning after_func bodies and deadline fibers -------------------------------------------
template <class F>
void spawn_anywhere(const char* name, F&& f) {
  if (current_scheduler() != nullptr) {
    spindle::go(SpawnOptions{.name = name}, std::forward<F>(f));
  } else {
    std::thread(std::forward<F>(f)).detach();
  }
}

// --- deferred work: what cancel does once every context lock is released ----------------------
struct Deferred {
  std::vector<std::shared_ptr<ContextNode>> timers;  // descendants whose timer to dequeue
  std::vector<std::stop_source> stops;
  std::vector<std::shared_ptr<AfterFuncState>> funcs;
  std::vector<ChanCore*> chans;  // done() channels to close, each retained until we are gone

  Deferred() = default;
  Deferred(const Deferred&) = delete;
  Deferred& operator=(const Deferred&) = delete;
  ~Deferred() {
    constexpr std::size_t kAhead = 8;  // many cold channels: overlap their misses
    for (std::size_t i = 0; i < chans.size(); ++i) {
      if (i + kAhead < chans.size()) __builtin_prefetch(chans[i + kAhead], 1);
      chans[i]->release();
    }
  }
  void close_later(const Chan<std::monostate>& ch) {
    ChanCore* c = ch.detail_core();
    chans.push_back(c);
    c->retain();
  }

  void run() noexcept {
    // Closed exactly once: only the first cancel gets here. All at once, so that a wide
    // cancel's closes overlap their cache misses (chan_close_all).
    if (!chans.empty()) chan_close_all(chans.data(), chans.size());
    for (auto& n : timers) cancel_timer(n.get());
    for (auto& s : stops) s.request_stop();  // runs user stop_callbacks: no lock held
    for (auto& a : funcs) {
      int expected = AfterFuncState::kPending;
      if (a->state.compare_exchange_strong(expected, AfterFuncState::kStarted,
                                           std::memory_order_acq_rel)) {
        spawn_anywhere("context after_func", [st = std::move(a)] { st->body->run(); });
      }
    }
    // References dropped here (after the loops) may destroy nodes: no lock is held.
  }
};

void link_child(ContextNode* owner, ChildLink* c) noexcept {
  ChildLink* head = &owner->children;
  c->prev = head->prev;
  c->next = head;
  head->prev->next = c;
  head->prev = c;
  c->linked = true;
  ++owner->nchildren;
}

void unlink_child(ContextNode* owner, ChildLink* c) noexcept {
  c->prev->next = c->next;
  c->next->prev = c->prev;
  c->prev = c->next = nullptr;
  c->linked = false;
  --owner->nchildren;
}

void wake_waiter(Waiter* w) noexcept {
  if (w->claim(WakeReason::canceled)) w->ready();
}

// Marks `n` and its subtree done. Takes n->mu (and, nested, each descendant's). Returns false if
// `n` was already done. `cause` is already defaulted (never empty).
bool cancel_subtree(ContextNode* n, std::error_code err, std::error_code cause, Deferred& d) {
  n->mu.lock();
  if (n->done.load(std::memory_order_relaxed)) {
    n->mu.unlock();
    return false;
  }
  n->err = err;
  n->cause = cause;
  n->done.store(true, std::memory_order_release);
  if (n->waiter1 != nullptr) {
    wake_waiter(n->waiter1);
    n->waiter1 = nullptr;
  }
  for (Waiter* w : n->more_waiters) wake_waiter(w);
  n->more_waiters.clear();
  if (n->stop) d.stops.push_back(*n->stop);
  if (!n->done_chan.is_nil()) d.close_later(n->done_chan);
  ChildLink* head = &n->children;
  for (ChildLink* c = head->next; c != head;) {
    ChildLink* next = c->next;
    c->prev = c->next = nullptr;
    c->linked = false;
    if (c->is_after_func) {
      d.funcs.push_back(std::move(static_cast<AfterFuncState*>(c)->self));
    } else {
      auto* child = static_cast<ContextNode*>(c);
      cancel_subtree(child, err, cause, d);
      if (child->timer_mode.load(std::memory_order_acquire) == TimerMode::armed) {
        // A child being destroyed (no strong reference left) dequeues its own timer.
        if (auto sp = child->weak_from_this().lock()) d.timers.push_back(std::move(sp));
      }
    }
    c = next;
  }
  head->prev = head->next = head;
  n->nchildren = 0;
  n->mu.unlock();
  return true;
}

void unlink_from_parent(ContextNode* n) noexcept {
  ContextNode* p = n->registered_with;
  if (p == nullptr) return;
  p->mu.lock();
  if (n->linked) unlink_child(p, n);
  p->mu.unlock();
}

// Go's cancelCtx.cancel(removeFromParent, err, cause). The caller keeps `n` alive.
void cancel_node(ContextNode* n, std::error_code err, std::error_code cause,
                 bool remove_from_parent) {
  if (!cause) cause = err;
  Deferred d;
  if (!cancel_subtree(n, err, cause, d)) return;
  if (remove_from_parent) unlink_from_parent(n);
  cancel_timer(n);
  d.run();
}

void expire(ContextNode* owner) {
  cancel_node(owner, make_error_code(errc::deadline_exceeded), owner->deadline_cause, true);
}

// Runs under the timer heap's lock: no cancellation work here (node.hpp).
bool fire_deadline(TimerNode* t) noexcept {
  auto* n = static_cast<ContextNode*>(t->owner);
  if (n->done.load(std::memory_order_acquire)) return false;
  std::shared_ptr<ContextNode> sp = n->weak_from_this().lock();
  if (!sp) return false;  // being destroyed: its destructor is waiting for the heap lock
  spindle::go(SpawnOptions{.name = "context deadline"},
              [sp = std::move(sp)] { expire(sp.get()); });
  return false;
}

// The lazy deadline check: for contexts whose deadline has no timer.
void check_lazy_deadline(const ContextNode* g) {
  ContextNode* owner = g->deadline_owner;
  if (owner == nullptr || timer_live(owner)) return;
  if (spindle::now() >= owner->deadline) expire(owner);
}

// Links a new cancelable node under its parent's governing node, or cancels it at once if that
// is done already (Go's propagateCancel).
void propagate(ContextNode* n) {
  ContextNode* p = n->parent ? n->parent->governing : nullptr;
  if (p == nullptr) return;  // parent never done
  check_lazy_deadline(p);
  p->mu.lock();
  if (p->done.load(std::memory_order_relaxed)) {
    const std::error_code err = p->err, cause = p->cause;
    p->mu.unlock();
    Deferred d;  // nothing can be registered on a new node yet: d stays empty
    cancel_subtree(n, err, cause, d);
    return;
  }
  n->registered_with = p;
  link_child(p, n);
  p->mu.unlock();
}

ContextNode* governing_of(const Context& ctx) noexcept {
  const auto& n = ContextAccess::node(ctx);
  return n ? n->governing : nullptr;
}

void interrupt_arm(void* self, Waiter& w) {
  auto* n = static_cast<ContextNode*>(self);
  n->mu.lock();
  if (n->done.load(std::memory_order_relaxed)) {
    n->mu.unlock();
    wake_waiter(&w);
    return;
  }
  if (n->waiter1 == nullptr) {
    n->waiter1 = &w;
  } else {
    n->more_waiters.insert(&w);
  }
  n->mu.unlock();
}

void interrupt_disarm(void* self, Waiter& w) {
  auto* n = static_cast<ContextNode*>(self);
  n->mu.lock();
  if (n->waiter1 == &w) {
    n->waiter1 = nullptr;
  } else if (!n->more_waiters.empty()) {
    n->more_waiters.erase(&w);
  }
  n->mu.unlock();
}

const std::shared_ptr<ContextNode>& todo_node() {
  static const std::shared_ptr<ContextNode> node =
      std::make_shared<ContextNode>(NodeKind::todo, nullptr);
  return node;
}

std::shared_ptr<ContextNode> new_cancel_node(const Context& parent, NodeKind kind) {
  auto n = std::make_shared<ContextNode>(kind, ContextAccess::node(parent));
  return n;
}

}  // namespace

// --- ContextNode ----------------------------------------------------------------------------

ContextNode::ContextNode(NodeKind k, std::shared_ptr<ContextNode> p) noexcept
    : kind(k), parent(std::move(p)) {
  g_live_nodes.fetch_add(1, std::memory_order_relaxed);
  children.prev = children.next = &children;
  ContextNode* pg = parent ? parent->governing : nullptr;
  ContextNode* pd = parent ? parent->deadline_owner : nullptr;
  switch (kind) {
    case NodeKind::todo:
    case NodeKind::without_cancel:
      break;
    case NodeKind::value:
      governing = pg;
      deadline_owner = pd;
      break;
    case NodeKind::cancel:
      governing = this;
      deadline_owner = pd;
      break;
    case NodeKind::deadline:
      governing = this;
      deadline_owner = this;  // deadline set by the creator
      break;
  }
  if (kind != NodeKind::deadline && deadline_owner != nullptr) deadline = deadline_owner->deadline;
}

ContextNode::~ContextNode() {
  // A cancelable node dies linked only if it was never cancelled (a CancelFunc always cancels,
  // so only when its creation threw half-way); unlink anyway rather than leave a dangling link.
  // `linked` is guarded by the parent's lock (a parent's cancel may be unlinking us right now).
  unlink_from_parent(this);
  cancel_timer(this);
  if (destroy_value != nullptr) destroy_value(value);
  g_live_nodes.fetch_sub(1, std::memory_order_relaxed);
}

// --- detail API -------------------------------------------------------------------------------

Interrupt context_interrupt(const Context& ctx) noexcept {
  ContextNode* g = governing_of(ctx);
  if (g == nullptr) return Interrupt{nullptr, [](void*, Waiter&) {}, [](void*, Waiter&) {}};
  return Interrupt{g, &interrupt_arm, &interrupt_disarm};
}

TimePoint context_deadline(const Context& ctx) noexcept {
  ContextNode* g = governing_of(ctx);
  if (g == nullptr || g->deadline_owner == nullptr) return kNoDeadline;
  if (timer_live(g->deadline_owner)) return kNoDeadline;  // the timer fires the interrupt
  return g->deadline;
}

std::error_code context_err(const Context& ctx) noexcept { return ctx.err(); }

std::error_code context_wait_error(const Context& ctx) noexcept {
  if (std::error_code ec = ctx.err()) return ec;
  // Unreachable by construction (the interrupt fires only after err is set, and a timeout at
  // context_deadline makes err() notice the deadline); never report success for a failed wait.
  return make_error_code(errc::deadline_exceeded);
}

const void* context_value(const Context& ctx, const void* key) noexcept {
  for (const ContextNode* n = ContextAccess::node(ctx).get(); n != nullptr; n = n->parent.get()) {
    if (n->kind == NodeKind::value && n->key == key) return n->value;
  }
  return nullptr;
}

Context make_value_context(const Context& parent, const void* key, void* value,
                           void (*destroy)(void*) noexcept) {
  std::shared_ptr<ContextNode> n;
  try {
    n = std::make_shared<ContextNode>(NodeKind::value, ContextAccess::node(parent));
  } catch (...) {
    destroy(value);
    throw;
  }
  n->key = key;
  n->value = value;
  n->destroy_value = destroy;
  return ContextAccess::make(std::move(n));
}

std::shared_ptr<AfterFuncState> register_after_func(const Context& ctx,
                                                    std::unique_ptr<AfterFuncBody> body) {
  auto st = std::make_shared<AfterFuncState>();
  st->is_after_func = true;
  st->body = std::move(body);
  ContextNode* g = governing_of(ctx);
  if (g == nullptr) return st;  // never done: f never runs; stop() reports it prevented it
  check_lazy_deadline(g);
  st->node = g->shared_from_this();
  g->mu.lock();
  if (!g->done.load(std::memory_order_relaxed)) {
    st->self = st;
    link_child(g, st.get());
    g->mu.unlock();
    return st;
  }
  g->mu.unlock();
  Deferred d;
  d.funcs.push_back(st);
  d.run();
  return st;
}

bool stop_after_func(AfterFuncState& st) noexcept {
  int expected = AfterFuncState::kPending;
  if (!st.state.compare_exchange_strong(expected, AfterFuncState::kStopped,
                                        std::memory_order_acq_rel)) {
    return false;
  }
  std::shared_ptr<AfterFuncState> self;  // dropped after the lock: it may destroy f's captures
  if (ContextNode* g = st.node.get()) {
    g->mu.lock();
    if (st.linked) {
      unlink_child(g, &st);
      self = std::move(st.self);
    }
    g->mu.unlock();
  }
  return true;
}

std::size_t context_child_count(const Context& ctx) noexcept {
  ContextNode* g = governing_of(ctx);
  if (g == nullptr) return 0;
  g->mu.lock();
  const std::size_t n = g->nchildren;
  g->mu.unlock();
  return n;
}

std::size_t context_waiter_count(const Context& ctx) noexcept {
  ContextNode* g = governing_of(ctx);
  if (g == nullptr) return 0;
  g->mu.lock();
  const std::size_t n = (g->waiter1 != nullptr ? 1 : 0) + g->more_waiters.size();
  g->mu.unlock();
  return n;
}

std::int64_t live_context_nodes() noexcept { return g_live_nodes.load(std::memory_order_relaxed); }

}  // namespace spindle::detail

namespace spindle {

using detail::ContextAccess;
using detail::ContextNode;

// --- Context ----------------------------------------------------------------------------------

std::error_code Context::err() const noexcept {
  ContextNode* g = node_ ? node_->governing : nullptr;
  if (g == nullptr) return {};
  if (g->done.load(std::memory_order_acquire)) return g->err;
  detail::check_lazy_deadline(g);
  if (g->done.load(std::memory_order_acquire)) return g->err;
  return {};
}

Receiver<std::monostate> Context::done() const {
  ContextNode* g = node_ ? node_->governing : nullptr;
  if (g == nullptr) return {};  // the nil channel: never ready
  (void)err();                  // a lazily noticed deadline
  g->mu.lock();
  if (!g->done_chan.is_nil()) {
    Receiver<std::monostate> r = g->done_chan;
    g->mu.unlock();
    return r;
  }
  g->mu.unlock();
  Chan<std::monostate> fresh(0);  // allocated outside the spinlock
  bool close_now = false;
  g->mu.lock();
  if (g->done_chan.is_nil()) {
    g->done_chan = fresh;
    // A cancel that ran before the channel existed could not close it: we do. (If the cancel
    // comes later it finds the channel and closes it; exactly one of the two does.)
    close_now = g->done.load(std::memory_order_relaxed);
  }
  Receiver<std::monostate> r = g->done_chan;
  g->mu.unlock();
  if (close_now) fresh.close();
  return r;
}

std::optional<TimePoint> Context::deadline() const noexcept {
  if (!node_ || node_->deadline_owner == nullptr) return std::nullopt;
  return node_->deadline;
}

std::stop_token Context::stop_token() const {
  ContextNode* g = node_ ? node_->governing : nullptr;
  if (g == nullptr) return {};
  (void)err();  // a lazily noticed deadline
  g->mu.lock();
  if (!g->stop) {
    try {
      g->stop.emplace();
    } catch (...) {
      g->mu.unlock();
      throw;
    }
    if (g->done.load(std::memory_order_relaxed)) {
      std::stop_source s = *g->stop;
      g->mu.unlock();
      s.request_stop();  // cancel ran before the source existed
      return s.get_token();
    }
  }
  std::stop_token t = g->stop->get_token();
  g->mu.unlock();
  return t;
}

// --- CancelFunc -------------------------------------------------------------------------------

CancelFunc& CancelFunc::operator=(CancelFunc&& other) noexcept {
  if (this != &other) {
    (*this)();
    node_ = std::move(other.node_);
  }
  return *this;
}

CancelFunc::~CancelFunc() { (*this)(); }

void CancelFunc::operator()() const noexcept { cancel({}); }

void CancelFunc::cancel(std::error_code cause) const noexcept {
  if (!node_) return;
  if (node_->done.load(std::memory_order_acquire)) return;  // idempotent, cheap
  detail::cancel_node(node_.get(), make_error_code(errc::canceled), cause, true);
}

// --- constructors -----------------------------------------------------------------------------

Context background() noexcept { return Context(); }

Context todo() noexcept { return ContextAccess::make(detail::todo_node()); }

CancelableContext with_cancel(const Context& parent) {
  auto n = detail::new_cancel_node(parent, detail::NodeKind::cancel);
  detail::propagate(n.get());
  return {ContextAccess::make(n), ContextAccess::make_cancel(n)};
}

CancelableContext with_cancel_cause(const Context& parent) { return with_cancel(parent); }

CancelableContext with_deadline(const Context& parent, TimePoint d) {
  return with_deadline_cause(parent, d, {});
}

CancelableContext with_deadline_cause(const Context& parent, TimePoint d, std::error_code cause) {
  if (auto cur = parent.deadline(); cur && *cur < d) {
    return with_cancel(parent);  // the parent's deadline comes first: semantically the parent
  }
  auto n = detail::new_cancel_node(parent, detail::NodeKind::deadline);
  n->deadline = d;
  n->deadline_cause = cause;
  detail::propagate(n.get());
  CancelableContext out{ContextAccess::make(n), ContextAccess::make_cancel(n)};
  if (n->done.load(std::memory_order_acquire)) return out;  // the parent was done
  if (d <= spindle::now()) {
    detail::expire(n.get());
    return out;
  }
  detail::Scheduler* s = detail::current_scheduler();
  const std::uint64_t run = s != nullptr ? detail::run_id(s) : 0;
  if (run == 0) {
    n->timer_mode.store(detail::TimerMode::lazy, std::memory_order_release);
    return out;
  }
  n->timer.when = d;
  n->timer.fire = &detail::fire_deadline;
  n->timer.owner = n.get();
  n->timer_sched = s;
  n->timer_run = run;
  n->timer_mode.store(detail::TimerMode::armed, std::memory_order_release);
  s->add_timer(&n->timer);
  return out;
}

Context without_cancel(const Context& parent) {
  return ContextAccess::make(
      std::make_shared<ContextNode>(detail::NodeKind::without_cancel, ContextAccess::node(parent)));
}

std::error_code cause(const Context& ctx) noexcept {
  if (!ctx.err()) return {};
  return ContextAccess::node(ctx)->governing->cause;  // done: immutable from now on
}

// --- this_fiber -------------------------------------------------------------------------------

namespace this_fiber {

std::error_code sleep_until(const Context& ctx, TimePoint deadline, std::source_location where) {
  if (auto ec = ctx.err()) return ec;
  const detail::Interrupt in = detail::context_interrupt(ctx);
  const detail::ParkOptions base{.interrupt = in.self != nullptr ? &in : nullptr};
  for (;;) {
    if (spindle::now() >= deadline) return {};
    detail::ParkOptions opts = base;
    opts.deadline = std::min(deadline, detail::context_deadline(ctx));
    detail::Waiter w;
    const detail::WakeReason r =
        detail::park(w, {detail::WaitReason::sleep, ContextAccess::node(ctx).get(), where}, opts);
    if (auto ec = ctx.err()) return ec;
    if (r == detail::WakeReason::canceled) {
      // Only the context claims with `canceled`, after setting err: unreachable, but never
      // report a full sleep for an interrupted one.
      continue;
    }
  }
}

}  // namespace this_fiber
}  // namespace spindle
