#include "fiber/stack.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace spindle::detail {
namespace {
constexpr std::size_t kSlabStacks = 64;  // stacks carved per slab mmap (empirical)

void write_canary(const Stack& s) noexcept {
  std::memcpy(s.lo, &kStackCanary, sizeof kStackCanary);
}
}  // namespace

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
  for (const Slab& s : slabs_) ::munmap(s.base, s.bytes);
  for (const Stack& s : guarded_maps_) ::munmap(s.guard, s.size() + page_size());
}

Stack StackPool::allocate(std::size_t usable) {
  const std::size_t size = round_size(usable);
  std::lock_guard lock(mu_);
  for (SizeClass& c : classes_) {
    if (c.size == size && !c.free.empty()) {
      Stack s = c.free.back();
      c.free.pop_back();
      if (s.guard == nullptr) write_canary(s);
      return s;
    }
  }
  Stack s = live_guarded_ < max_guarded_ ? map_guarded(size) : carve_slab(size);
  if (s.guard != nullptr) ++live_guarded_;
  write_canary(s);
  return s;
}

void StackPool::release(const Stack& s) noexcept {
  std::lock_guard lock(mu_);
  for (SizeClass& c : classes_) {
    if (c.size == s.size()) {
      c.free.push_back(s);
      return;
    }
  }
  classes_.push_back(SizeClass{s.size(), {s}});
}

Stack StackPool::map_guarded(std::size_t size) {
  const std::size_t page = page_size();
  void* p = ::mmap(nullptr, size + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) return carve_slab(size);  // out of mappings: fall back, don't fail
  if (::mprotect(p, page, PROT_NONE) != 0) {
    ::munmap(p, size + page);
    return carve_slab(size);
  }
  char* base = static_cast<char*>(p);
  Stack s{base + page, base + page + size, base};
  guarded_maps_.push_back(s);
  return s;
}

Stack StackPool::carve_slab(std::size_t size) {
  const std::size_t bytes = size * kSlabStacks;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  char* base = static_cast<char*>(p);
  slabs_.push_back(Slab{base, bytes});
  // Keep the first stack; the rest go to the free list of this size.
  SizeClass* cls = nullptr;
  for (SizeClass& c : classes_) {
    if (c.size == size) cls = &c;
  }
  if (cls == nullptr) {
    classes_.push_back(SizeClass{size, {}});
    cls = &classes_.back();
  }
  for (std::size_t i = kSlabStacks - 1; i >= 1; --i) {
    Stack s{base + i * size, base + (i + 1) * size, nullptr};
    cls->free.push_back(s);
  }
  return Stack{base, base + size, nullptr};
}

}  // namespace spindle::detail
