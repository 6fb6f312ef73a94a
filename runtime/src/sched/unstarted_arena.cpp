#include "sched/unstarted_arena.hpp"

#include <sys/mman.h>

#include <mutex>
#include <new>
#include <vector>

namespace spindle::detail {
namespace {

// Each block is preceded by its chunk's address, so release() needs no lookup.
constexpr std::size_t kHeader = UnstartedArena::kAlign;
constexpr std::size_t kFirstBlock = 64;  // the chunk header's cache line is its own

// Empty chunks kept for reuse (process-wide: a chunk empties on whichever worker frees its last
// record, and should serve whichever worker spawns next).
constexpr std::size_t kCachedChunksMax = 256;  // 8 MiB
std::mutex g_cache_mu;
std::vector<void*>* g_cache = nullptr;  // never destroyed: chunks may be released at exit

void* take_cached_chunk() noexcept {
  std::lock_guard lock(g_cache_mu);
  if (g_cache == nullptr || g_cache->empty()) return nullptr;
  void* p = g_cache->back();
  g_cache->pop_back();
  return p;
}

bool cache_chunk(void* p) noexcept {
  std::lock_guard lock(g_cache_mu);
  if (g_cache == nullptr) {
    g_cache = new (std::nothrow) std::vector<void*>();
    if (g_cache == nullptr) return false;
    g_cache->reserve(kCachedChunksMax);
  }
  if (g_cache->size() >= kCachedChunksMax) return false;
  g_cache->push_back(p);  // reserved: cannot throw
  return true;
}

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
    void* p = take_cached_chunk();
    if (p == nullptr) {
      p = ::mmap(nullptr, kChunkBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
    }
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
    if (!cache_chunk(c)) ::munmap(c, kChunkBytes);
  }
}

}  // namespace spindle::detail
