#include "diag/report.hpp"

#include <cstdlib>
#include <exception>
#include <typeinfo>

#include <cxxabi.h>

namespace spindle::detail {

void describe_fiber(std::FILE* out, const Fiber* f) {
  if (f == nullptr) {
    std::fputs("(no fiber: the scheduler itself)", out);
    return;
  }
  std::fprintf(out, "fiber %llu \"%s\" (spawned at %s:%u in %s)",
               static_cast<unsigned long long>(f->id), f->name, f->spawn_site.file_name(),
               static_cast<unsigned>(f->spawn_site.line()), f->spawn_site.function_name());
}

void die_uncaught_exception(const Fiber* f, std::exception_ptr e) noexcept {
  std::fputs("spindle: panic: uncaught exception in ", stderr);
  describe_fiber(stderr, f);
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    int status = 0;
    char* type = abi::__cxa_demangle(typeid(ex).name(), nullptr, nullptr, &status);
    std::fprintf(stderr, ": %s: %s\n", status == 0 && type ? type : typeid(ex).name(), ex.what());
    std::free(type);
  } catch (...) {
    std::fputs(": (not a std::exception)\n", stderr);
  }
  std::fputs("spindle: join fibers with WaitGroup::go or ErrGroup::go to handle their errors\n",
             stderr);
  std::fflush(stderr);
  std::abort();
}

void die_stack_overflow(const Fiber* f, const char* how) noexcept {
  std::fputs("spindle: fatal error: stack overflow in ", stderr);
  describe_fiber(stderr, f);
  if (f != nullptr) {
    std::fprintf(stderr, ": stack of %zu bytes (%s), %s\n", f->stack.size(),
                 f->stack.guard != nullptr ? "guarded" : "unguarded", how);
  } else {
    std::fprintf(stderr, ": %s\n", how);
  }
  std::fputs("spindle: give the fiber a larger stack with SpawnOptions{.stack_size = ...}\n",
             stderr);
  std::fflush(stderr);
  std::abort();
}

void die_broken_invariant(const Fiber* f, const char* what) noexcept {
  std::fprintf(stderr, "spindle: fatal error: %s (", what);
  describe_fiber(stderr, f);
  std::fputs(")\n", stderr);
  std::fflush(stderr);
  std::abort();
}

}  // namespace spindle::detail
