// Scheduler: N workers running fibers M:N, with work stealing and idle sleep.
//
// Each worker is a thread running `Worker::loop` on its own stack (the "scheduler stack", Go's
// g0): fibers switch to it to park, yield or exit, and it picks the next fiber. Running the
// scheduler on the worker's stack keeps what a parked fiber's stack holds shallow (FIELD-NOTES:
// Boost.Fiber's stealing on the parking fiber's stack costs it an extra page per parked fiber).
//
// Where a worker finds work, in order: its run_next slot and local ring; the global queue (fibers
// readied from outside the runtime, and overflow); expired timers; other workers' rings (steal
// half from a random victim; run_next only on the last round); then it sleeps.
//
// Idle protocol (after Go's spinning-M protocol, proc.go): at most half of the busy workers spin
// looking for work (for ~20 us, Worker::spin_for_work, before they sleep: a futex sleep and
// wake-up costs more than the gaps between bursts of communicating fibers); a fiber made
// runnable wakes an idle worker only when no worker is spinning.
// A worker about to sleep first publishes itself idle, then re-checks every queue and the
// timers, so work submitted concurrently is either seen by the re-check or sees the idle worker
// and wakes it (all these operations are seq_cst: the store-load pairs must not reorder). A lost
// wake-up would need both sides to miss each other, which seq_cst forbids.
#pragma once

#include <array>
#include <atomic>
#include <deque>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <spindle/detail/spinlock.hpp>
#include <spindle/runtime.hpp>

#include "fiber/fiber.hpp"
#include "fiber/stack.hpp"
#include "net/poller.hpp"
#include "os/relayed_signals.hpp"
#include "sched/fiber_registry.hpp"
#include "sched/run_queue.hpp"
#include "sched/unstarted_arena.hpp"
#include "time/timer_heaps.hpp"

namespace spindle::detail {

inline constexpr std::size_t kCacheLine = 64;
// The two spilled parts of the global queue, in the order a worker with nothing to do takes them
// (Scheduler::spill).
enum SpilledKind : std::size_t { kSpilledWithStack = 0, kSpilledUnstarted = 1 };
// How long the oldest fiber in a worker's ring, or in the spilled part of the global queue, may
// be passed over before a pick takes it first (Worker::StarvationWatch, global_pop_fair). Taking
// it every 61st pick made fork-join work breadth-first: each such pick started another subtree
// of skynet, the ring overflowed, and every subtree's stacks stayed live (1M leaves at 1 worker:
// 8,000 fibers live, 138 MB peak RSS, 34k page faults, 562 ms; with this limit 109 live, 6.6 MB,
// 1k faults, 214 ms). Go bounds a time slice at 10 ms (forcePreemptNS).
inline constexpr auto kStarvationLimit = std::chrono::milliseconds(1);

class Scheduler;

// What the worker does for the fiber that just switched to it.
enum class AfterSwitch : std::uint8_t { none, park, yield, exit };

struct ParkRequest {
  Waiter* waiter = nullptr;
  const ParkOptions* opts = nullptr;
  TimerNode* timer = nullptr;   // armed after unlock, if the park has a deadline
};

class Worker {
 public:
  Worker(Scheduler& sched, int index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  void loop();               // runs until the scheduler stops
  [[nodiscard]] int index() const noexcept { return index_; }

  Scheduler& sched_;
  const int index_;
  SwitchContext sched_ctx_;  // this worker's own stack, while a fiber runs
  // The fiber running on this worker. Written only by the worker; relaxed atomic because the
  // watchdog reads it from its own thread.
  std::atomic<Fiber*> current_{nullptr};
  AfterSwitch after_ = AfterSwitch::none;
  ParkRequest park_req_{};
  // Clock::now() (its ticks) as of this worker's last scheduling round (every
  // kGlobalFairnessTick picks, and on waking from idle): when a fiber parked, for dumps only.
  // Reading a clock at every park cost ping-pong 9% (2 workers, 116 -> 106 ns a round trip) and
  // select over unbuffered channels 5%; the price is that a dump over-reports a wait by the run
  // time of at most 61 picks on that worker (fibers running long are what the watchdog reports).
  std::int64_t round_ticks_ = 0;
  // Fiber ids handed out by this worker's spawns, taken from the global counter a batch at a time
  // (Go's goidcache): [next_id_, id_limit_).
  std::uint64_t next_id_ = 0;
  std::uint64_t id_limit_ = 0;
  // Leaves the running fiber `f` (after_ and park_req_ say why; on f's stack): straight into the
  // fiber in run_next when there is one, else to the scheduler loop. Returns when f resumes,
  // perhaps on another worker (never, if it exits).
  void switch_away(Fiber* f, bool exits = false);
  // First thing in a fiber that has just been switched to: finishes a direct switch (the
  // after_switch of the fiber that left). Reads the worker afresh: the fiber may have migrated.
  [[gnu::noinline]] static void finish_arrival() noexcept;
  RunQueue runq_;
  std::uint64_t tick_ = 0;   // fibers run so far (victims' progress, for run_next stealing)
  std::atomic<std::uint64_t> switches_{0};
  std::atomic<std::uint64_t> parks_{0};  // per worker: a shared counter bounced between cores
  std::atomic<std::uint32_t> wake_word_{0};  // futex: 1 = woken
  bool spinning_ = false;
  int busy_peer_polls_ = 0;  // sleep_idle's looks at a busy peer that found nothing (backoff)
  bool fifo_next_ = false;   // the last fiber yielded: pick the oldest next
  std::uint64_t rng_;
  std::vector<Stack> stack_cache_;  // default-size stacks (each with room for its record) recycled here
  // Fibers that finished here but were registered by another worker, and the old records of
  // fibers spawned elsewhere that first started here (FiberRegistry::move): unregistered in
  // batches (fiber_registry.hpp), their stacks and records reused only after that.
  std::vector<Fiber*> exited_elsewhere_;
  void unregister_later(Fiber* f);
  void flush_exited();
  UnstartedArena unstarted_arena_;  // records of fibers spawned here into a backlog
  std::thread thread_;
  RelayedSignalMask relayed_signals_;  // applied while loop() runs, refreshed before a sleep

 private:
  Fiber* find_runnable();
  Fiber* steal(bool steal_run_next);
  // A victim's short queue (kKeepQueued, 8 fibers or fewer) is left to it while it keeps switching:
  // those fibers run within a few hand-offs there, and taking one splits fibers that feed each
  // other across vCPUs (select over two unbuffered channels at 2 workers moved a fiber on one
  // hand-off in nine; in the machine's "far" vCPU state that doubled its time). True once
  // `victim` has not switched for kStallPatience (10 us) of this worker's looks: it is busy in
  // one fiber, so take half of them (Go's thieves wait ~3 us for runnext alike); more only after
  // as long again. A selector draining 1,024 buffered values runs ~40 us without switching: taking
  // its producers one after another to the other vCPU cost select_buffered a fifth (far vCPUs).
  bool stalled(const Worker& victim);
  struct VictimView {
    std::uint64_t switches = ~std::uint64_t{0};  // the victim's count at this worker's last look
    TimePoint since{};                            // when that count was first seen
  };
  std::vector<VictimView> victim_views_;
  // Whether the oldest waiter of a queue has waited kStarvationLimit: fed, at each look (every
  // kGlobalFairnessTick picks), what identifies that waiter, which changes once it is served.
  // A new waiter's wait is counted from the look that first sees it, so the bound is the limit
  // plus one look's interval.
  template <class Key>
  struct StarvationWatch {
    Key seen{};
    TimePoint since{};
    bool starved(const Key& oldest, TimePoint now) {
      if (!(oldest == seen)) {
        seen = oldest;
        since = now;
        return false;
      }
      return now - since >= kStarvationLimit;
    }
  };
  StarvationWatch<RunQueue::Oldest> ring_watch_;       // this worker's ring
  // The global queue's spilled parts (Scheduler::Spilled), by SpilledKind.
  std::array<StarvationWatch<std::uint64_t>, 2> spilled_watch_;
  Fiber* spin_for_work();
  void stop_spinning(bool found_work);
  void run(Fiber* f);
  void begin_run(Fiber* f) noexcept;
  Fiber* direct_successor() noexcept;
  void after_switch(Fiber* f);
  // The fiber that switched directly to the running one, its after_switch still to do.
  Fiber* switched_from_ = nullptr;
  bool sleep_idle();            // false when the scheduler stops
  std::uint32_t next_random() noexcept;
};

class Scheduler {
 public:
  explicit Scheduler(const Options& opts);
  ~Scheduler();

  // Spawn a fiber (any thread while the runtime runs).
  std::uint64_t spawn(const SpawnOptions& opts, const Callable& fn, bool is_main = false);
  // Make a parked fiber runnable. `next`: run it next on this worker (a hand-off).
  void ready(Fiber* f, bool next);
  // Make a parked fiber runnable at the global queue's tail (Waiter::Order::fifo).
  void ready_fifo(Fiber* f);
  // ready(f, true) for a fiber known to be parked: its waiter's claimers hold a lock its park
  // released (Waiter::Claimers).
  void ready_parked(Fiber* f);
  // ready_parked for fibers woken together (a close's receivers): onto the calling worker's
  // ring in one push, one idle worker woken for all of them.
  void ready_parked_many(Fiber* const* fs, std::size_t n);
  std::atomic<int> outside_wakers_{0};  // threads outside the runtime inside Waiter::ready()
  // Queue a runnable fiber (on the calling worker if it is ours, else globally) and wake help.
  void enqueue(Fiber* f, bool next);
  // Queue a fiber that yielded on worker w.
  void ready_runnable(Worker& w, Fiber* f);
  void push_local(Worker& w, Fiber* f);
  // A timer became the earliest: make sure a sleeping worker re-arms its timeout.
  void on_timer_earlier();
  // Queues `t` on the calling worker's heap (threads outside the runtime: the outside heap).
  void add_timer(TimerNode* t);
  // Fire the due timers of worker `self`'s heap and, with `every_heap`, of the other heaps not
  // locked by another thread (timer_heaps.hpp); returns how many.
  std::size_t check_timers(int self, bool every_heap);

  void start_workers();     // threads for workers 1..N-1; worker 0 is the caller of run()
  void stop();              // wakes every worker; loops exit

  // A fiber finished on w: unregister it and recycle its stack (maybe later, in a batch).
  void recycle(Worker& w, Fiber* f);
  // Its record destroyed, its stack back to w's cache (or the pool, in batches).
  void free_fiber(Worker& w, Fiber* f);
  void release_stack(Worker& w, const Stack& st);
  Stack acquire_stack(Worker* w, std::size_t bytes);
  // A fiber's record and callable, placed at the top of stack `st`, ready for its first switch.
  Fiber* place_on_stack(const Stack& st, const Callable& fn, std::uint64_t id);
  // Fibers spawned while their worker has a backlog wait for their first run without a stack.
  static Fiber* new_unstarted(Worker& w, std::size_t stack_bytes, const Callable& fn, std::uint64_t id);
  static void delete_unstarted(Fiber* f) noexcept;
  Fiber* start_unstarted(Worker& w, Fiber* pending);  // the started fiber replaces `pending`

  // Global queue.
  // The global queue (Go's sched.runq) has two parts. Injected: fibers readied outside any
  // worker's own run queue (by the netpoller, by threads outside the runtime), which
  // every worker serves at each kGlobalFairnessTick-th pick, as Go does. Spilled: the oldest half
  // of a full ring, its worker's own backlog, served when a worker's queue runs dry and by that
  // fairness pick only once its oldest has waited kStarvationLimit. (Served every 61st pick,
  // spilled fork-join work ran breadth-first: each pick started another subtree of skynet, and
  // each subtree's stacks stayed live.)
  // The spilled part is two queues: fibers holding a stack (woken ones, mostly) go ahead of
  // unstarted ones (a spawning loop's backlog, Scheduler::new_unstarted). With one queue, 100k
  // sleepers woken while a spawning loop's backlog was spilled ran after all of it: hundreds
  // ran 35-75 ms late. Running them first also frees their stacks sooner, for the unstarted
  // ones to take warm; an unstarted fiber costs only its small record while it waits. Each part
  // has its own starvation watch, so neither holds the other back beyond kStarvationLimit.
  void global_push(Fiber* f);                    // injected
  void spill(Fiber** fs, std::uint32_t n);       // spilled, by kind (reorders fs)
  void spill_half(Worker& w);                    // the older half of w's full ring, spilled
  Fiber* global_pop(Worker& w);   // pops one, spilled first, and moves a batch into w's ring
  // One injected fiber; else one spilled fiber of a kind whose front has starved.
  Fiber* global_pop_fair(Worker& w, const std::array<bool, 2>& spilled_starved);
  void push_global_locked(Fiber** fs, std::uint32_t n, std::deque<Fiber*>& queue);
  Fiber* global_pop_migrating(Worker& w);  // force-migration mode; global_mu_ held
  [[nodiscard]] bool global_empty() const noexcept {
    return global_size_.load(std::memory_order_seq_cst) == 0;
  }

  // The netpoller, created on first use (most programs never touch a descriptor).
  Netpoller& netpoller();
  // Non-blocking poll at a scheduling point; true if it readied fibers.
  bool poll_network();
  // Blocks in the netpoller until `deadline` if fibers wait on I/O and no other worker is
  // already blocked there; false (without polling) otherwise.
  bool block_in_poller(Worker& w, TimePoint deadline);

  // Deadlock detection: called by a worker about to sleep with no timer pending.
  // True when every worker is idle, no fiber waits on I/O or a blocking call, and this stayed
  // so (no fiber switched) for the grace period: then it reports and stops the runtime.
  bool check_deadlock(Worker& w);

  // Idle workers.
  void wake_idle_worker();        // Go's wakep
  void wake_all_idle_workers();   // force-migration mode; a new relayed signal (os/relayed_signals)
  bool any_work_visible(const Worker& self) const noexcept;

  // Options::stack_high_water (diag/stack_usage.cpp).
  void paint_stack(Fiber* f);
  void record_high_water(Fiber* f);

  const Options opts_;
  std::size_t default_stack_bytes_;
  std::vector<std::unique_ptr<Worker>> workers_;
  StackPool stacks_;
  TimerHeaps timers_;  // one heap per worker, on lines of their own
  // The groups below are written by every worker at different rates: each starts a cache line
  // of its own, or one group's writes evict another's readers. (Shrinking TimerHeap's lock once
  // moved the global queue's lock onto a line with the idle counters: spawn+join at 2 workers
  // took 7% longer.)

  // A spin lock, held for a batch of deque operations at most: a close waking a million fibers
  // spills them here while another worker takes them, and with a std::mutex both workers slept
  // in the futex hundreds of times during that close (the taker idle 40% of it).
  alignas(kCacheLine) mutable SpinLock global_mu_;
  std::deque<Fiber*> global_;  // injected; contiguous: popping must not walk cold fiber records
  struct Spilled {
    std::deque<Fiber*> fibers;
    // Counts changes of the front (a push into it empty, a pop): workers watch it to tell how
    // long the front has waited (Worker::spilled_watch_). Written under global_mu_.
    std::atomic<std::uint64_t> front_changes{0};
  };
  std::array<Spilled, 2> spilled_;  // by SpilledKind
  // Force-migration mode only: readied fibers, by the worker they last ran on. A worker pops
  // from every queue but its own, in O(workers); one shared queue made it skip its own fibers
  // one by one, quadratic in a million-fiber test.
  std::vector<std::deque<Fiber*>> global_by_last_worker_;
  std::atomic<std::size_t> global_size_{0};  // all of the above
  [[nodiscard]] bool migrating() const noexcept { return opts_.force_migration && workers_.size() > 1; }

  alignas(kCacheLine) std::mutex idle_mu_;
  std::vector<Worker*> idle_;
  std::atomic<int> nidle_{0};
  std::atomic<int> nspinning_{0};
  alignas(kCacheLine) std::atomic<bool> stopping_{false};  // read at every pick

  // Live fibers, for num_fibers(), dumps and leak checks.
  FiberRegistry registry_;

  // The main fiber's id: set before the workers start, never changed (a run's identity too:
  // ids are unique in the process).
  std::uint64_t main_id_ = 0;
  std::atomic<bool> main_done_{false};

  std::mutex netpoller_mu_;
  std::unique_ptr<Netpoller> netpoller_owned_;
  std::atomic<Netpoller*> netpoller_{nullptr};
  std::atomic<Worker*> poll_owner_{nullptr};  // the worker blocked in the netpoller, if any

  // Fibers parked on something outside the runtime's view that will wake them (a blocking call
  // running on the offload pool): the deadlock detector counts them as live.
  std::atomic<int> external_waits_{0};
  std::atomic<bool> deadlocked_{false};

  // Counters (relaxed; read with stats()).
  std::atomic<std::uint64_t> steals_{0};
  std::atomic<std::uint64_t> timers_fired_{0};
  std::atomic<std::uint64_t> idle_sleeps_{0};

  std::unique_ptr<class Watchdog> watchdog_;
};

// The running scheduler and the calling thread's worker; null outside the runtime. Not inlined:
// a fiber may resume on another thread, and a compiler may cache a thread_local's address across
// the call that switched (SEMANTICS.md).
Scheduler* current_scheduler() noexcept;
[[gnu::noinline]] Worker* current_worker() noexcept;
[[gnu::noinline]] Fiber* current_fiber() noexcept;

}  // namespace spindle::detail
