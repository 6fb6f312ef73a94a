// A read prefetch the compiler keeps.
//
// GCC 12 at -O2 deletes __builtin_prefetch calls that sit behind a branch of an inlined function
// (cd-dce treats them as dead code: they have no result and no side effect it models), so
// `if (cold) __builtin_prefetch(p)` in a header helper can compile to nothing at all; that is how
// the saved-frames prefetch of a resumed fiber went missing without any test noticing. An asm
// statement is opaque to that pass.
#pragma once

namespace spindle::detail {

inline void prefetch_line(const void* p) noexcept {
#if defined(__x86_64__)
  asm volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
#else
  __builtin_prefetch(p);
#endif
}

}  // namespace spindle::detail
