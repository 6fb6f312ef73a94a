// FiberRegistry: every live fiber, for num_fibers(), dumps, leak checks and the watchdog.
//
// Spawning and exiting are the two hottest paths of a spawn-heavy program, and with work
// stealing a fiber usually exits on another worker than the one that spawned it. A single
// registry (one lock, one intrusive list) made every spawn and every exit bounce the same lock
// and the neighbouring fibers' records between cores: it was a third of the time of spawn+join
// at 2 workers. So the registry is sharded by worker, like Go's per-P free lists:
//  * a fiber is registered in the shard of the worker that spawns it (one more shard takes
//    spawns from threads outside the runtime), in a slot of that shard's table (no neighbour
//    record is touched, unlike a linked list);
//  * a fiber that exits on its own shard's worker is unregistered at once; one that exits
//    elsewhere is marked exited and queued on the exiting worker, which unregisters its queue
//    in one locked batch per shard (Worker::flush_exited), so a remote lock is taken once per
//    batch rather than once per fiber. Readers skip exited fibers; their records stay valid
//    until unregistered, as their stacks are not reused before then.
//  * counts are per-shard monotonic counters (spawned on, exited on), written only by their
//    worker; live() sums them with a double collect, so it is exact: it returns the count at
//    one instant between its call and its return.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <spindle/detail/spinlock.hpp>

#include "fiber/fiber.hpp"

namespace spindle::detail {

class FiberRegistry {
 public:
  explicit FiberRegistry(int workers);
  FiberRegistry(const FiberRegistry&) = delete;
  FiberRegistry& operator=(const FiberRegistry&) = delete;

  [[nodiscard]] int workers() const noexcept { return static_cast<int>(shards_.size()) - 1; }

  // The shard that takes fibers spawned by worker `index`, or by a thread outside (-1).
  [[nodiscard]] int shard_of_worker(int index) const noexcept {
    return index < 0 ? outside_shard() : index;
  }

  void add(Fiber* f, int shard);
  // A fiber finished on worker `worker`: counted at once. Then either remove() it (it is in
  // that worker's shard) or mark_exited() it and remove_batch() it later.
  void count_exit(int worker) noexcept;
  void mark_exited(Fiber* f) noexcept { f->exited.store(true, std::memory_order_release); }
  void remove(Fiber* f) noexcept;
  // `to` takes over `from`'s registration (a fiber whose record moved when it first started).
  void replace(Fiber* from, Fiber* to) noexcept;
  // The same move, for a fiber that first starts on a worker other than its spawner: `to` is
  // registered in `shard` (the starting worker's) without counting a spawn, and `from` is marked
  // exited, for a later remove_batch() to unregister. Replacing in place took the spawner's lock
  // once per started fiber (a tenth of spawn+join at 2 workers); this takes only local locks.
  // A dump racing with the move may miss the fiber, as one racing with its spawn may.
  void move(Fiber* from, Fiber* to, int shard);
  // Unregisters fibers of any shards, one lock per shard (reorders fs).
  void remove_batch(Fiber** fs, std::size_t n) noexcept;

  // Fibers alive now (exact, see above).
  [[nodiscard]] std::int64_t live() const noexcept;
  [[nodiscard]] std::uint64_t spawned() const noexcept;

  // Calls fn(Fiber*) for every live fiber, holding each shard's lock while it visits that
  // shard: records visited stay valid and their names whole (set_name() takes the same lock).
  template <class Fn>
  void for_each_live(Fn&& fn) {
    for (auto& s : shards_) {
      std::lock_guard lock(s->mu);
      for (Fiber* f : s->slots) {
        if (f != nullptr && !f->exited.load(std::memory_order_acquire)) fn(f);
      }
    }
  }
  // Every registered fiber, exited or not, without locks: for the scheduler's destructor only.
  template <class Fn>
  void for_each_registered_unlocked(Fn&& fn) {
    for (auto& s : shards_) {
      for (Fiber* f : s->slots) {
        if (f != nullptr) fn(f);
      }
    }
  }

  [[nodiscard]] SpinLock& lock_of(const Fiber* f) noexcept { return shards_[f->registry_shard]->mu; }

 private:
  struct alignas(64) Shard {
    // Counters on their own line: written by the shard's worker only (the outside shard's by
    // any outside thread, hence atomic RMW), read by live().
    alignas(64) std::atomic<std::uint64_t> spawned{0};
    std::atomic<std::uint64_t> exited{0};
    alignas(64) SpinLock mu;
    std::vector<Fiber*> slots;       // registered fibers; null where a slot is free
    std::vector<std::uint32_t> free;  // free slot indices
  };
  [[nodiscard]] int outside_shard() const noexcept { return static_cast<int>(shards_.size()) - 1; }
  void insert(Fiber* f, int shard);
  static void unlink(Shard& s, Fiber* f) noexcept;

  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace spindle::detail
