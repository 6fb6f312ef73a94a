#include "sched/unstarted_arena.hpp"

#include <sys/mman.h>

#include <new>

namespace spindle::detail {
namespace {

// Each block is preceded by its chunk's address, so release() needs no lookup.
constexpr std::size_t kHeader = UnstartedArena::kAlign;
constexpr std::size_t kFirstBlock = 64;  // the chunk header's cache line is its own

std::size_t round_up(std::size_t n) noexcept {
  return (n + UnstartedArena::kAlign - 1) / UnstartedArena::kAlign * UnstartedArena::kAlign;
}

}  // namespace

UnstartedArena::~UnstartedArena() {
  if (current_ != nullptr) unref(current_);
}

void* UnstartedArena::allocate(std::size_t bytes) {
  const std::size_t need = kHeader + round_up(bytes);
  if (need > kChunkBytes - kFirstBlock) return nullptr;
  if (current_ == nullptr || static_cast<std::size_t>(end_ - bump_) < need) {
    void* p = ::mmap(nullptr, kChunkBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    if (current_ != nullptr) unref(current_);  // its last record's release unmaps it
    current_ = ::new (p) Chunk{{1}};
    bump_ = static_cast<char*>(p) + kFirstBlock;
    end_ = static_cast<char*>(p) + kChunkBytes;
  }
  current_->refs.fetch_add(1, std::memory_order_relaxed);
  char* block = bump_;
  bump_ += need;
  *reinterpret_cast<Chunk**>(block) = current_;
  return block + kHeader;
}

void UnstartedArena::release(void* block) noexcept {
  unref(*reinterpret_cast<Chunk**>(static_cast<char*>(block) - kHeader));
}

void UnstartedArena::unref(Chunk* c) noexcept {
  // acq_rel: every use of the chunk's blocks happens before the unmap by the last one out.
  if (c->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    c->~Chunk();
    ::munmap(c, kChunkBytes);
  }
}

}  // namespace spindle::detail
