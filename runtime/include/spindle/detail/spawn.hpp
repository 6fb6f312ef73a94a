// Type-erased fiber creation behind `spindle::go`. The callable is moved into the new fiber's
// own stack, next to its record, so spawning allocates nothing on the heap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <string_view>

namespace spindle {

// Per-spawn settings. Zero values mean "the runtime's default".
struct SpawnOptions {
  std::string_view name{};      // shown in dumps, traces and crash reports (copied, ≤ 31 chars)
  std::size_t stack_size = 0;   // usable bytes; 0 = Options::default_stack_size
  std::source_location where = std::source_location::current();
};

namespace detail {

struct Callable {
  std::size_t size;
  std::size_t align;
  void (*move_to)(void* dst, void* src);  // move-construct at dst from src
  void (*invoke)(void* self);
  void (*destroy)(void* self) noexcept;
  void* src;
};

// Creates a fiber running `fn` and makes it runnable. Returns its id.
std::uint64_t spawn(const SpawnOptions& opts, const Callable& fn);

template <class F>
Callable make_callable(F& f) {
  return Callable{
      sizeof(F), alignof(F),
      [](void* dst, void* src) { ::new (dst) F(std::move(*static_cast<F*>(src))); },
      [](void* self) { (*static_cast<F*>(self))(); },
      [](void* self) noexcept { static_cast<F*>(self)->~F(); },
      &f};
}

}  // namespace detail
}  // namespace spindle
