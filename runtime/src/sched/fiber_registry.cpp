#include "sched/fiber_registry.hpp"

#include <algorithm>
#include <mutex>

namespace spindle::detail {
namespace {

// A counter with a single writer: a plain load and store, no locked instruction.
void bump(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_release);
}

}  // namespace

FiberRegistry::FiberRegistry(int workers) {
  shards_.reserve(static_cast<std::size_t>(workers) + 1);
  for (int i = 0; i <= workers; ++i) shards_.push_back(std::make_unique<Shard>());
}

void FiberRegistry::add(Fiber* f, int shard) {
  insert(f, shard);
  Shard& s = *shards_[static_cast<std::size_t>(shard)];
  if (shard == outside_shard()) s.spawned.fetch_add(1, std::memory_order_acq_rel);
  else bump(s.spawned);
}

void FiberRegistry::insert(Fiber* f, int shard) {
  Shard& s = *shards_[static_cast<std::size_t>(shard)];
  f->registry_shard = static_cast<std::uint16_t>(shard);
  {
    std::lock_guard lock(s.mu);
    if (s.free.empty()) {
      f->registry_slot = static_cast<std::uint32_t>(s.slots.size());
      s.slots.push_back(f);
      // unlink() pushes to `free` with no room to throw: keep it as large as `slots`.
      if (s.free.capacity() < s.slots.capacity()) s.free.reserve(s.slots.capacity());
    } else {
      f->registry_slot = s.free.back();
      s.free.pop_back();
      s.slots[f->registry_slot] = f;
    }
  }
}

void FiberRegistry::count_exit(int worker) noexcept { bump(shards_[static_cast<std::size_t>(worker)]->exited); }

void FiberRegistry::unlink(Shard& s, Fiber* f) noexcept {
  s.slots[f->registry_slot] = nullptr;
  s.free.push_back(f->registry_slot);  // never reallocates: see add()
}

void FiberRegistry::remove(Fiber* f) noexcept {
  Shard& s = *shards_[f->registry_shard];
  std::lock_guard lock(s.mu);
  unlink(s, f);
}

void FiberRegistry::replace(Fiber* from, Fiber* to) noexcept {
  Shard& s = *shards_[from->registry_shard];
  to->registry_shard = from->registry_shard;
  to->registry_slot = from->registry_slot;
  std::lock_guard lock(s.mu);
  s.slots[from->registry_slot] = to;
}

void FiberRegistry::move(Fiber* from, Fiber* to, int shard) {
  mark_exited(from);
  insert(to, shard);
}

void FiberRegistry::remove_batch(Fiber** fs, std::size_t n) noexcept {
  // Grouped by shard: one lock per shard per batch.
  std::sort(fs, fs + n, [](const Fiber* a, const Fiber* b) { return a->registry_shard < b->registry_shard; });
  for (std::size_t i = 0; i < n;) {
    Shard& s = *shards_[fs[i]->registry_shard];
    std::lock_guard lock(s.mu);
    const std::uint16_t shard = fs[i]->registry_shard;
    for (; i < n && fs[i]->registry_shard == shard; ++i) unlink(s, fs[i]);
  }
}

std::int64_t FiberRegistry::live() const noexcept {
  auto collect = [this](std::uint64_t* out) {
    std::size_t k = 0;
    for (const auto& s : shards_) {
      out[k++] = s->spawned.load(std::memory_order_acquire);
      out[k++] = s->exited.load(std::memory_order_acquire);
    }
  };
  const std::size_t n = 2 * shards_.size();
  std::vector<std::uint64_t> a(n), b(n);
  collect(a.data());
  // Counters only grow: two equal collects saw values they all held at one instant between
  // them. A fiber that spawned and exited during a single collect could otherwise be seen
  // exiting but not spawning, and the sum would run low.
  for (int attempt = 0; attempt < 1000; ++attempt) {
    collect(b.data());
    if (a == b) break;
    a.swap(b);
  }
  std::int64_t live = 0;
  for (std::size_t k = 0; k < n; k += 2) {
    live += static_cast<std::int64_t>(a[k]) - static_cast<std::int64_t>(a[k + 1]);
  }
  return live;
}

std::uint64_t FiberRegistry::spawned() const noexcept {
  std::uint64_t n = 0;
  for (const auto& s : shards_) n += s->spawned.load(std::memory_order_relaxed);
  return n;
}

}  // namespace spindle::detail
