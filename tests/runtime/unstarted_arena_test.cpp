// UnstartedArena: a chunk goes back (to the shared cache, or the system) exactly when its owner
// has moved on to another chunk and the last of its blocks is released, from whatever thread.
// Released early, a record still queued would be overwritten; never, and every spawning flood
// would leak its chunks.
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "sched/unstarted_arena.hpp"

namespace spindle::detail {
namespace {

constexpr std::size_t kBlock = 256;

// Each block is preceded by its chunk's address (unstarted_arena.cpp).
void* chunk_of(void* block) {
  return *reinterpret_cast<void**>(static_cast<char*>(block) - UnstartedArena::kAlign);
}

// Blocks of `arena` from its current chunk on, up to and excluding the first of the next chunk,
// which is returned.
void* fill_chunk(UnstartedArena& arena, std::vector<void*>& blocks) {
  void* const chunk = chunk_of(blocks.emplace_back(arena.allocate(kBlock)));
  for (;;) {
    void* b = arena.allocate(kBlock);
    if (chunk_of(b) != chunk) return b;
    blocks.push_back(b);
  }
}

TEST(UnstartedArena, ChunkReturnsAfterItsOwnerMovedOnAndItsLastBlockWasReleased) {
  // Empty the shared cache of chunks other tests left (it holds at most 256), so that the chunk
  // returned below is the next one handed out.
  UnstartedArena drain;
  std::vector<void*> drained;
  for (int c = 0; c < 300; ++c) drained.push_back(fill_chunk(drain, drained));

  UnstartedArena owner;
  std::vector<void*> first;
  void* const moved_on = fill_chunk(owner, first);  // owner now allocates from another chunk
  void* const chunk = chunk_of(first.front());
  ASSERT_GT(first.size(), 2u);
  // Every block but one released by another thread, as a worker that started those fibers.
  std::thread([&] {
    for (std::size_t i = 1; i < first.size(); ++i) UnstartedArena::release(first[i]);
  }).join();

  {
    UnstartedArena other;  // one live block keeps the chunk out of anyone's hands
    std::vector<void*> got;
    for (int c = 0; c < 3; ++c) got.push_back(fill_chunk(other, got));
    for (void* b : got) {
      ASSERT_NE(chunk_of(b), chunk);
      UnstartedArena::release(b);
    }
  }

  UnstartedArena::release(first.front());  // the last block: the chunk goes back to the cache
  UnstartedArena next;
  void* const b = next.allocate(kBlock);
  EXPECT_EQ(chunk_of(b), chunk);
  UnstartedArena::release(b);
  UnstartedArena::release(moved_on);
  for (void* d : drained) UnstartedArena::release(d);
}

}  // namespace
}  // namespace spindle::detail
