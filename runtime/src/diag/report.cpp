#include "diag/report.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string_view>
#include <typeinfo>

#include <cxxabi.h>

namespace spindle::detail {

namespace {

// A fatal message assembled in a fixed buffer and written with one write(2): a stack overflow
// is reported from a SIGSEGV handler, where stdio is not async-signal-safe (the fiber may have
// faulted inside fprintf, holding stderr's lock) and, under TSan, its interceptors crashed.
class FatalMessage {
 public:
  FatalMessage& operator<<(std::string_view s) noexcept {
    const std::size_t n = std::min(s.size(), sizeof buf_ - len_);
    std::memcpy(buf_ + len_, s.data(), n);
    len_ += n;
    return *this;
  }
  FatalMessage& operator<<(std::uint64_t v) noexcept {
    char digits[24];
    const auto r = std::to_chars(digits, digits + sizeof digits, v);
    return *this << std::string_view(digits, static_cast<std::size_t>(r.ptr - digits));
  }
  FatalMessage& operator<<(const Fiber* f) noexcept {
    if (f == nullptr) return *this << "(no fiber: the scheduler itself)";
    return *this << "fiber " << f->id << " \"" << std::string_view(f->name) << "\" (spawned at "
                 << std::string_view(f->spawn_site.file_name()) << ":"
                 << std::uint64_t{f->spawn_site.line()} << " in "
                 << std::string_view(f->spawn_site.function_name()) << ")";
  }
  void write_to_stderr() const noexcept {
    std::fflush(stderr);  // what the program printed before comes first
    for (std::size_t done = 0; done < len_;) {
      const ssize_t n = ::write(STDERR_FILENO, buf_ + done, len_ - done);
      if (n <= 0 && errno != EINTR) return;
      if (n > 0) done += static_cast<std::size_t>(n);
    }
  }

 private:
  char buf_[2048];
  std::size_t len_ = 0;
};

}  // namespace

void die_uncaught_exception(const Fiber* f, std::exception_ptr e) noexcept {
  FatalMessage m;
  m << "spindle: panic: uncaught exception in " << f;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    int status = 0;
    char* type = abi::__cxa_demangle(typeid(ex).name(), nullptr, nullptr, &status);
    m << ": " << std::string_view(status == 0 && type ? type : typeid(ex).name()) << ": "
      << std::string_view(ex.what()) << "\n";
    std::free(type);
  } catch (...) {
    m << ": (not a std::exception)\n";
  }
  m << "spindle: join fibers with WaitGroup::go or ErrGroup::go to handle their errors\n";
  m.write_to_stderr();
  std::abort();
}

void die_stack_overflow(const Fiber* f, const char* how) noexcept {
  FatalMessage m;
  m << "spindle: fatal error: stack overflow in " << f;
  if (f != nullptr) {
    m << ": stack of " << std::uint64_t{f->run().stack.size()} << " bytes ("
      << (f->run().stack.guard != nullptr ? "guarded" : "unguarded") << "), " << how << "\n";
  } else {
    m << ": " << how << "\n";
  }
  m << "spindle: give the fiber a larger stack with SpawnOptions{.stack_size = ...}\n";
  m.write_to_stderr();
  std::abort();
}

void die_broken_invariant(const Fiber* f, const char* what) noexcept {
  FatalMessage m;
  m << "spindle: fatal error: " << what << " (" << f << ")\n";
  m.write_to_stderr();
  std::abort();
}

}  // namespace spindle::detail
