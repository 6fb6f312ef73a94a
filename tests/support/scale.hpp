// Test sizes under sanitizers. The shapes of stress tests stay the same; only counts shrink:
// ASan/UBSan run ~3-10x slower, and TSan also gives every live fiber its own ~1 MiB trace, so
// it cannot hold 100k fibers alive at once (it fails to mmap).
#pragma once

namespace spindle::testing {

#if defined(__SANITIZE_THREAD__)
inline constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif
#else
inline constexpr bool kTsan = false;
#endif

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif
#else
inline constexpr bool kAsan = false;
#endif

// `n` in a plain build, `asan_n` under ASan, `tsan_n` under TSan.
constexpr long scaled(long n, long asan_n, long tsan_n) {
  return kTsan ? tsan_n : (kAsan ? asan_n : n);
}

}  // namespace spindle::testing
