#include "sched/unstarted_arena.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <mutex>
#include <new>
#include <vector>

namespace spindle::detail {
namespace {

// Each block is preceded by its chunk's address, so release() needs no lookup.
constexpr std::size_t kHeader = UnstartedArena::kAlign;
constexpr std::size_t kFirstBlock = 64;  // the chunk header's cache line is its own

// Where chunks come from and go back to (process-wide: a chunk empties on whichever worker frees
// its last record, and should serve whichever worker spawns next).
//  * Empty chunks are kept for reuse, up to kCachedChunksMax: warm pages for the next flood.
//  * New ones are carved from 2 MiB mappings, one mmap per 64 chunks.
//  * Empty chunks beyond the cache are returned to the system kReleaseBatch at a time, adjacent
//    ones in one munmap. Every munmap shoots down the TLBs of every worker (an IPI to each CPU
//    running the process): one per 32 KiB chunk was a tenth of a 100k-timer run's profile, its
//    records having flooded through about a thousand chunks. Carved in order and emptied in
//    about the order they were filled, a batch's chunks are mostly neighbours.
constexpr std::size_t kCachedChunksMax = 256;  // 8 MiB
constexpr std::size_t kCarveBytes = 2 * 1024 * 1024;
constexpr std::size_t kReleaseBatch = 64;  // 2 MiB held at most, awaiting release

class ChunkSource {
 public:
  void* take() {
    std::lock_guard lock(mu_);
    if (!cache_.empty()) {
      void* p = cache_.back();
      cache_.pop_back();
      return p;
    }
    if (carve_ == carve_end_) {
      void* p = ::mmap(nullptr, kCarveBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                       -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      carve_ = static_cast<char*>(p);
      carve_end_ = carve_ + kCarveBytes;
    }
    void* p = carve_;
    carve_ += UnstartedArena::kChunkBytes;
    return p;
  }

  void give(void* chunk) noexcept {
    std::lock_guard lock(mu_);
    if (cache_.size() < kCachedChunksMax) {
      cache_.push_back(chunk);  // reserved: cannot throw
      return;
    }
    released_.push_back(chunk);  // reserved: cannot throw
    if (released_.size() < kReleaseBatch) return;
    std::sort(released_.begin(), released_.end());
    for (std::size_t i = 0; i < released_.size();) {
      auto* from = static_cast<char*>(released_[i]);
      char* to = from + UnstartedArena::kChunkBytes;
      for (++i; i < released_.size() && released_[i] == to; ++i) to += UnstartedArena::kChunkBytes;
      ::munmap(from, static_cast<std::size_t>(to - from));
    }
    released_.clear();
  }

  static ChunkSource& get() {
    static auto* source = new ChunkSource();  // never destroyed: chunks may be released at exit
    return *source;
  }

 private:
  ChunkSource() {
    cache_.reserve(kCachedChunksMax);
    released_.reserve(kReleaseBatch);
  }

  std::mutex mu_;
  std::vector<void*> cache_;
  std::vector<void*> released_;
  char* carve_ = nullptr;  // the rest of the last 2 MiB mapping, not yet handed out
  char* carve_end_ = nullptr;
};

std::size_t round_up(std::size_t n) noexcept {
  return (n + UnstartedArena::kAlign - 1) / UnstartedArena::kAlign * UnstartedArena::kAlign;
}

}  // namespace

UnstartedArena::~UnstartedArena() { retire(); }

void UnstartedArena::retire() noexcept {
  if (current_ == nullptr) return;
  Chunk* c = current_;
  current_ = nullptr;
  unref(c, kBias - allocated_);  // the last block's release, or this, frees it
}

void* UnstartedArena::allocate(std::size_t bytes) {
  const std::size_t need = kHeader + round_up(bytes);
  if (need > kChunkBytes - kFirstBlock) return nullptr;
  if (current_ == nullptr || static_cast<std::size_t>(end_ - bump_) < need) {
    void* p = ChunkSource::get().take();
    retire();
    current_ = ::new (p) Chunk{{kBias}};
    allocated_ = 0;
    bump_ = static_cast<char*>(p) + kFirstBlock;
    end_ = static_cast<char*>(p) + kChunkBytes;
  }
  ++allocated_;
  char* block = bump_;
  bump_ += need;
  *reinterpret_cast<Chunk**>(block) = current_;
  return block + kHeader;
}

void UnstartedArena::release(void* block) noexcept {
  unref(*reinterpret_cast<Chunk**>(static_cast<char*>(block) - kHeader), 1);
}

void UnstartedArena::unref(Chunk* c, std::int64_t n) noexcept {
  // acq_rel: every use of the chunk's blocks happens before the unmap by the last one out.
  // kBias - allocated - (releases) reaches zero exactly once, after retire() and every release.
  if (c->refs.fetch_sub(n, std::memory_order_acq_rel) == n) {
    c->~Chunk();
    ChunkSource::get().give(c);
  }
}

}  // namespace spindle::detail
