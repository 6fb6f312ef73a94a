// Fiber stacks: pooled, and guarded while the kernel's map budget allows.
//
// A stack is one contiguous range [base, base + size). Guarded stacks are single mmaps with a
// PROT_NONE page at the bottom: an overflow faults in the guard and the SIGSEGV handler reports
// it. Each guard costs two entries of vm.max_map_count (65530 by default), so past
// Options::max_guarded_stacks live guarded stacks we carve unguarded stacks out of large slabs
// (adjacent stacks merge into one mapping) and detect overflow with a canary word at the bottom,
// checked at every switch away from the fiber and when it exits.
//
// Freed stacks go back to a per-size free list and are reused while their pages are resident:
// on this VM a first-touch page fault costs ~1.5 us, more than a whole spawn should.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace spindle::detail {

struct Stack {
  char* lo = nullptr;        // lowest usable byte (just above the guard page, if any)
  char* hi = nullptr;        // one past the highest usable byte
  char* guard = nullptr;     // the guard page, or nullptr for slab stacks
  [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(hi - lo); }
};

inline constexpr std::uint64_t kStackCanary = 0x5350494e444c4521ull;  // "SPINDLE!"

class StackPool {
 public:
  explicit StackPool(std::size_t max_guarded) : max_guarded_(max_guarded) {}
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // A stack with at least `usable` bytes (rounded up to whole pages). Throws std::bad_alloc.
  Stack allocate(std::size_t usable);
  void release(const Stack& s) noexcept;

  [[nodiscard]] static std::size_t page_size() noexcept;
  [[nodiscard]] static std::size_t round_size(std::size_t usable) noexcept;

 private:
  struct SizeClass {
    std::size_t size;
    std::vector<Stack> free;
  };
  Stack map_guarded(std::size_t size);
  Stack carve_slab(std::size_t size);

  std::mutex mu_;
  std::size_t max_guarded_;
  std::size_t live_guarded_ = 0;
  std::vector<SizeClass> classes_;
  struct Slab {
    char* base;
    std::size_t bytes;
  };
  std::vector<Slab> slabs_;         // unmapped in the destructor
  std::vector<Stack> guarded_maps_; // all guarded stacks ever mapped, unmapped in the destructor
};

}  // namespace spindle::detail
