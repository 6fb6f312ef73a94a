// Fiber stacks: pooled, and guarded while the kernel's map budget allows.
//
// Stacks are carved from slabs (one mmap each: 64 stacks, unguarded ones growing to 256 MiB).
// While fewer than Options::max_guarded_stacks exist, each gets a guard page below it: an
// overflow faults there and the SIGSEGV handler reports it. On Linux 6.13+ the guard is a
// page-table guard region (MADV_GUARD_INSTALL), elsewhere a PROT_NONE page, which costs an
// mprotect and two entries of vm.max_map_count (65530 by default); so past that budget slabs
// are unguarded: adjacent stacks share one mapping with a single guard page at the slab's
// bottom. Their overflow is caught by the SIGSEGV handler when the stack pointer leaves the
// stack (at the latest at that slab guard), and by a canary word just below every stack (see
// Stack::canary), checked every 8th switch and when the fiber exits.
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
  char* guard = nullptr;     // the guard page, or nullptr for an unguarded stack
  // Unguarded stacks: 8 bytes just below `lo`, in the top of the region below (which is resident
  // whenever that region is in use), so checking it touches no extra page of this stack; an
  // overflow crosses it first. Null for guarded stacks (the guard page catches overflows).
  char* canary = nullptr;
  // Set on a stack just carved: its canary is written by the first allocation, outside the
  // pool's lock (the write is the first touch of a page: a fault, too slow to hold a lock over).
  bool canary_unwritten = false;
  std::size_t region = 0;    // the size class: bytes from lo to the next stack's lo
  [[nodiscard]] std::size_t size() const noexcept { return static_cast<std::size_t>(hi - lo); }
  [[nodiscard]] bool canary_intact() const noexcept;
};

inline constexpr std::uint64_t kStackCanary = 0x5350494e444c4521ull;  // "SPINDLE!"

// Makes guard pages PROT_NONE pages (mprotect) from now on, even where the kernel has guard
// regions (`on` false: guard regions again where it has them). Returns the previous setting.
// For tests: the fallback is all that kernels before 6.13 offer (Debian 12's own runs 6.1),
// and a machine with a newer one would otherwise never run it.
bool use_mprotect_guards(bool on) noexcept;

class StackPool {
 public:
  explicit StackPool(std::size_t max_guarded) : max_guarded_(max_guarded) {}
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  // A stack with at least `usable` bytes (rounded up to whole pages). Throws std::bad_alloc.
  Stack allocate(std::size_t usable);
  // Appends `n` stacks of `usable` bytes to `out`, the most recently freed last; one lock.
  void allocate_many(std::size_t usable, std::size_t n, std::vector<Stack>& out);
  void release(const Stack& s) noexcept { release_many(&s, 1); }
  // `n` stacks of one size class; one lock.
  void release_many(const Stack* stacks, std::size_t n) noexcept;

  [[nodiscard]] static std::size_t page_size() noexcept;
  [[nodiscard]] static std::size_t round_size(std::size_t usable) noexcept;

 private:
  struct ReleasedBatch;  // stack.cpp: written into the top of a released stack
  struct SizeClass {
    std::size_t size = 0;
    std::vector<Stack> fresh;  // carved, never handed out
    // Handed back, in batches described inside their own memory: releasing never allocates,
    // and a million stacks coming back write no fresh page (a vector of them did: 48 MB).
    ReleasedBatch* released = nullptr;  // the most recently released batch first
    std::size_t released_stacks = 0;
    std::size_t next_slab_stacks = 64;  // unguarded slabs grow to 256 MiB (stack.cpp)
  };
  SizeClass& size_class(std::size_t size);
  void carve_slab(SizeClass& cls, bool guarded);
  // Fills [out, out + n) with stacks of `usable` bytes.
  void take(std::size_t usable, std::size_t n, Stack* out);
  // Moves the `n` most recently released stacks of `cls` into [at, at + n), the warmest last.
  static void take_released(SizeClass& cls, Stack* at, std::size_t n) noexcept;

  std::mutex mu_;
  std::size_t max_guarded_;
  std::size_t live_guarded_ = 0;
  std::size_t slab_guards_ = 0;  // unguarded slabs with a guard page at their bottom
  std::vector<SizeClass> classes_;
  struct Slab {
    char* base;
    std::size_t bytes;
  };
  std::vector<Slab> slabs_;  // unmapped in the destructor
};

}  // namespace spindle::detail
