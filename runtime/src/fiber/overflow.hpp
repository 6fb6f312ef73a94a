// Stack-overflow reporting: a SIGSEGV handler, on an alternate signal stack per worker, that
// recognises a fault in (or just below) the running fiber's guard page and reports the fiber
// instead of dying with a bare segfault. Other faults go to the previous handler.
#pragma once

#include <cstddef>

namespace spindle::detail {

void install_overflow_handler();

// The calling thread's alternate signal stack, for the lifetime of the object.
class AltSignalStack {
 public:
  AltSignalStack();
  ~AltSignalStack();
  AltSignalStack(const AltSignalStack&) = delete;
  AltSignalStack& operator=(const AltSignalStack&) = delete;

 private:
  void* mem_ = nullptr;
  std::size_t size_ = 0;
  bool installed_ = false;
};

}  // namespace spindle::detail
