// UnstartedArena: memory for the records of fibers that wait for their first run without a
// stack (Scheduler::new_unstarted).
//
// Such records come in floods (a loop spawning a million fibers) and go as the fibers start,
// each then touching a stack page of its own. From the C heap, the freed records stayed
// resident (they are freed oldest first, so the heap never trims), and a million parked fibers
// cost their page plus a dead record each: 4.4 KB instead of 4.1. Here a worker bump-allocates
// records from 32 KiB chunks of its own; each chunk counts its live records (biased: see
// Chunk::refs), and whoever frees its last record returns the chunk: to a
// small shared cache of empty chunks (warm pages for the next flood: fresh ones cost a page fault
// per 14 records), or, once the cache holds 8 MiB, to the system, in batches (ChunkSource in
// the .cpp). Chunks are small because one record that waits long keeps its whole chunk resident.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spindle::detail {

class UnstartedArena {
 public:
  static constexpr std::size_t kChunkBytes = 32 * 1024;
  static constexpr std::size_t kAlign = 16;  // of every block

  UnstartedArena() = default;
  UnstartedArena(const UnstartedArena&) = delete;
  UnstartedArena& operator=(const UnstartedArena&) = delete;
  ~UnstartedArena();

  // `bytes` of memory aligned to kAlign, from the calling (owning) worker's chunk; nullptr when
  // larger than a chunk can hold (the caller then does without the arena). Throws
  // std::bad_alloc when no chunk can be mapped.
  void* allocate(std::size_t bytes);
  // Any thread.
  static void release(void* block) noexcept;

 private:
  struct Chunk {
    // Starts at kBias while the chunk is the owner's current one, and every release subtracts
    // one; the owner adds nothing per block (it counts them in allocated_) and settles the bias
    // when it moves on (retire). So the owner writes this line twice per chunk rather than once
    // per block: with the records freed on another worker (a spawning loop whose fibers are
    // started elsewhere), a per-block increment bounced the line between vCPUs every spawn.
    std::atomic<std::int64_t> refs;
  };
  static constexpr std::int64_t kBias = std::int64_t{1} << 40;  // more blocks than a chunk holds
  static void unref(Chunk* c, std::int64_t n) noexcept;
  void retire() noexcept;

  Chunk* current_ = nullptr;
  std::int64_t allocated_ = 0;  // blocks handed out from current_
  char* bump_ = nullptr;
  char* end_ = nullptr;
};

}  // namespace spindle::detail
