// Stack high-water marks (Options::stack_high_water): every new stack is painted with a
// pattern below its initial frame; when the fiber finishes, the lowest byte no longer holding the
// pattern tells how deep it went. Results are kept per spawn site.
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include <fmt/format.h>

#include <spindle/debug.hpp>

#include "sched/scheduler.hpp"

namespace spindle::detail {
namespace {

constexpr unsigned char kPaint = 0xA5;
constexpr std::size_t kInitialFrame = 512;  // left unpainted below the callable: the first frame

struct SiteUsage {
  std::size_t fibers = 0;
  std::size_t max_used = 0;
  std::size_t stack_size = 0;
};

std::mutex g_usage_mu;
std::map<std::string, SiteUsage> g_usage;

char* paint_top(const Fiber* f) {
  char* top = static_cast<char*>(f->fn.src) - kInitialFrame;
  return top > f->run().stack.lo ? top : f->run().stack.lo;
}

}  // namespace

void Scheduler::paint_stack(Fiber* f) {
  char* lo = f->run().stack.lo;
  std::memset(lo, kPaint, static_cast<std::size_t>(paint_top(f) - lo));
}

void Scheduler::record_high_water(Fiber* f) {
  const char* p = f->run().stack.lo;
  const char* top = paint_top(f);
  while (p < top && static_cast<unsigned char>(*p) == kPaint) ++p;
  const std::size_t used = static_cast<std::size_t>(f->run().stack.hi - p);
  const std::string site = fmt::format("{}:{}", f->spawn_site.file_name(), f->spawn_site.line());
  std::lock_guard lock(g_usage_mu);
  SiteUsage& u = g_usage[site];
  ++u.fibers;
  u.max_used = std::max(u.max_used, used);
  u.stack_size = f->run().stack.size();
}

}  // namespace spindle::detail

namespace spindle {

std::string stack_high_water_report() {
  std::lock_guard lock(detail::g_usage_mu);
  std::string out;
  for (const auto& [site, u] : detail::g_usage) {
    out += fmt::format("{}  fibers {}  max {} of {} bytes\n", site, u.fibers, u.max_used, u.stack_size);
  }
  return out;
}

}  // namespace spindle
