#include "fiber/stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "fiber/switch.hpp"

namespace spindle::detail {
namespace {
// Stacks per slab (one mmap each): guarded slabs kSlabStacks; unguarded ones start there and
// double while the slab stays within kMaxSlabBytes of address space (MAP_NORESERVE: only the
// pages touched count). With every slab at 64 stacks, a million parked fibers took 15,600
// mmaps, each taking mmap_lock for writing between the other worker's page faults into the
// same merged mapping; growing slabs took their spawn from 1.8 to 1.2 s at 2 workers.
constexpr std::size_t kSlabStacks = 64;
constexpr std::size_t kMaxSlabBytes = std::size_t{256} << 20;

constexpr std::size_t kCanaryZone = 16;  // top bytes of each region kept for the canary above
// Unguarded slabs still get one guard page at their bottom, so an overflow runs at most through
// its own slab's lower stacks (which die with the process) and faults there, rather than through
// whatever the kernel mapped below: a heap arena, another thread's stack. Where the guard is an
// mprotect (kernels before 6.13) it costs two map entries per slab; past this many slabs they
// are left out to keep well inside vm.max_map_count.
constexpr std::size_t kMaxSlabGuards = 65536 / 2 / 2;

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102  // Linux 6.13 (uapi/asm-generic/mman-common.h)
#endif

std::atomic<bool> g_guard_regions{true};  // until the kernel rejects one, or a test says so

// Makes one page a guard: any access faults (SIGSEGV). Linux 6.13+ installs a guard region in
// the page tables (MADV_GUARD_INSTALL): it neither splits the mapping nor costs map-count
// entries. mprotect's mapping split was 10% of a 100k-timer run's profile; with guard regions
// that run took 12% less time and the 1,000-fiber mutex run 24% less (A/B medians of 5).
// Older kernels reject the advice (EINVAL): then mprotect, as before.
bool make_guard_page(char* page_addr, std::size_t page) noexcept {
  if (g_guard_regions.load(std::memory_order_relaxed)) {
    if (::madvise(page_addr, page, MADV_GUARD_INSTALL) == 0) return true;
    g_guard_regions.store(false, std::memory_order_relaxed);
  }
  return ::mprotect(page_addr, page, PROT_NONE) == 0;
}

void write_canary_once(Stack& s) noexcept {
  if (!s.canary_unwritten) return;
  std::memcpy(s.canary, &kStackCanary, sizeof kStackCanary);
  s.canary_unwritten = false;
}
}  // namespace

bool use_mprotect_guards(bool on) noexcept {
  return !g_guard_regions.exchange(!on, std::memory_order_relaxed);
}

std::size_t StackPool::page_size() noexcept {
  static const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t StackPool::round_size(std::size_t usable) noexcept {
  const std::size_t page = page_size();
  usable = std::max(usable, 2 * page);
  return (usable + page - 1) / page * page;
}

StackPool::~StackPool() {
  for (const Slab& s : slabs_) {
    // Under ASan, fibers that never returned leave their frames' redzones poisoned, and the
    // shadow outlives munmap: the next mapping at these addresses (another runtime's arena chunk
    // in the same process) then faulted on its first write. A no-op without ASan.
    prepare_stack_top(s.base, s.base + s.bytes);
    ::munmap(s.base, s.bytes);
  }
}

bool Stack::canary_intact() const noexcept {
  return canary == nullptr || std::memcmp(canary, &kStackCanary, sizeof kStackCanary) == 0;
}

// Released stacks travel in batches, like tcmalloc's transfer cache: a worker hands back the
// colder half of its cache at once and refills it a batch at a time, each a contiguous copy. The
// batch's descriptors are written into the top of its first stack (the carrier, which is
// entries[0] and so the last one handed out), a page the fiber that ran there made resident.
struct StackPool::ReleasedBatch {
  ReleasedBatch* next;
  std::size_t count;
  [[nodiscard]] Stack* entries() noexcept { return reinterpret_cast<Stack*>(this + 1); }
};

namespace {
// At most this many stacks per batch: their descriptors fit in the carrier's top page, whatever
// the fiber there left resident (2 KiB of descriptors; a stack has at least two pages).
constexpr std::size_t kMaxBatch = 2048 / sizeof(Stack);
}  // namespace

Stack StackPool::allocate(std::size_t usable) {
  Stack s;
  take(usable, 1, &s);
  return s;
}

void StackPool::allocate_many(std::size_t usable, std::size_t n, std::vector<Stack>& out) {
  const std::size_t from = out.size();
  out.resize(from + n);  // may throw: before anything is taken
  take(usable, n, out.data() + from);
}

void StackPool::take(std::size_t usable, std::size_t n, Stack* out) {
  const std::size_t size = round_size(usable);
  std::unique_lock lock(mu_);
  SizeClass& cls = size_class(size);
  const std::size_t reused = std::min(n, cls.released_stacks);
  const std::size_t fresh = n - reused;
  while (cls.fresh.size() < fresh) carve_slab(cls, /*guarded=*/live_guarded_ < max_guarded_);
  // Never-used stacks at the front, released ones after them, the warmest at the back: the
  // worker's cache hands out its back first.
  std::copy(cls.fresh.end() - static_cast<std::ptrdiff_t>(fresh), cls.fresh.end(), out);
  cls.fresh.resize(cls.fresh.size() - fresh);
  take_released(cls, out + fresh, reused);
  lock.unlock();
  for (std::size_t i = 0; i < fresh; ++i) write_canary_once(out[i]);
}

void StackPool::take_released(SizeClass& cls, Stack* at, std::size_t n) noexcept {
  cls.released_stacks -= n;
  std::size_t end = n;  // the newest batch fills the back of [at, at + n)
  while (end > 0) {
    ReleasedBatch* b = cls.released;
    const std::size_t m = std::min(end, b->count);
    b->count -= m;
    // Read before the batch is unlinked: entries[0] describes the carrier, whose memory this is.
    std::copy(b->entries() + b->count, b->entries() + b->count + m, at + end - m);
    end -= m;
    if (b->count == 0) cls.released = b->next;
  }
}

void StackPool::release_many(const Stack* stacks, std::size_t n) noexcept {
  if (n == 0) return;
  // Written outside the lock: these stacks are still the caller's.
  ReleasedBatch* first = nullptr;
  ReleasedBatch* last = nullptr;
  for (std::size_t done = 0; done < n;) {
    const std::size_t m = std::min(kMaxBatch, n - done);
    const Stack& carrier = stacks[done];
    char* at = carrier.hi - sizeof(ReleasedBatch) - m * sizeof(Stack);
    at -= reinterpret_cast<std::uintptr_t>(at) % alignof(ReleasedBatch);
    prepare_stack_top(at, carrier.hi);  // ASan: the frames of its last fiber may be poisoned
    auto* b = ::new (at) ReleasedBatch{nullptr, m};
    std::uninitialized_copy(stacks + done, stacks + done + m, b->entries());
    // Older stacks in later batches: the list is taken newest batch first.
    b->next = first;
    first = b;
    if (last == nullptr) last = b;
    done += m;
  }
  std::lock_guard lock(mu_);
  SizeClass& cls = size_class(stacks[0].region);
  last->next = cls.released;
  cls.released = first;
  cls.released_stacks += n;
}

StackPool::SizeClass& StackPool::size_class(std::size_t size) {
  for (SizeClass& c : classes_) {
    if (c.size == size) return c;
  }
  classes_.emplace_back().size = size;
  return classes_.back();
}

void StackPool::carve_slab(SizeClass& cls, bool guarded) {
  // One mapping per slab of stacks: far fewer system calls than one mmap per stack, and
  // unguarded stacks merge into a single kernel mapping. A guard page costs an mprotect and
  // splits the mapping (two entries of vm.max_map_count per guarded stack).
  const std::size_t page = page_size();
  const std::size_t stride = cls.size + (guarded ? page : 0);
  // Unguarded slabs start with one lead page: the slab's guard page (then their lowest stack is
  // guarded by it and needs no canary) or, past kMaxSlabGuards, the canary zone of that stack.
  const std::size_t lead = guarded ? 0 : page;
  const std::size_t stacks = guarded ? kSlabStacks : cls.next_slab_stacks;
  if (!guarded && 2 * stacks * stride <= kMaxSlabBytes) cls.next_slab_stacks = 2 * stacks;
  const std::size_t bytes = lead + stride * stacks;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  char* base = static_cast<char*>(p);
  slabs_.push_back(Slab{base, bytes});
  const bool slab_guard = !guarded && slab_guards_ < kMaxSlabGuards && make_guard_page(base, page);
  if (slab_guard) ++slab_guards_;
  cls.fresh.reserve(cls.fresh.size() + stacks);  // fresh is empty or nearly: one slab's worth
  for (std::size_t i = stacks; i-- > 0;) {
    char* region = base + lead + i * stride;
    Stack s;
    s.region = cls.size;
    if (guarded && make_guard_page(region, page)) {
      s.guard = region;
      s.lo = region + page;
      s.hi = s.lo + cls.size;
      ++live_guarded_;
    } else {
      s.lo = region + (guarded ? page : 0);
      s.hi = s.lo + cls.size - kCanaryZone;  // the top bytes hold the canary of the stack above
      if (slab_guard && i == 0) {
        s.guard = base;  // the slab's guard page lies just below
      } else {
        s.canary = s.lo - kCanaryZone;
        // Written once, at the first allocation: only this stack's own fiber can overwrite it
        // (by overflowing), and a clobbered canary ends the process, so a reused stack's canary
        // is still intact. Rewriting it at every reuse cost the spawning worker a miss on a
        // line that the worker checking it at exit then had to fetch back.
        s.canary_unwritten = true;
      }
    }
    cls.fresh.push_back(s);
  }
}

}  // namespace spindle::detail
