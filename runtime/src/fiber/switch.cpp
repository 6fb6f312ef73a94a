// The stack switch, and the sanitizer annotations that must surround it.
//
// jump_fcontext(to, vp) suspends the caller and resumes `to`; the resumed side receives the
// caller's new fcontext and `vp`. We pass a Transfer so the resumed side can store the caller's
// fcontext into the caller's SwitchContext: that is the only way a suspended context's registers
// are ever recorded.
#include "fiber/switch.hpp"

#include <boost/context/detail/fcontext.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define SPINDLE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPINDLE_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SPINDLE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPINDLE_TSAN 1
#endif
#endif

#ifdef SPINDLE_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef SPINDLE_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace spindle::detail {
namespace bctx = boost::context::detail;

namespace {

struct Transfer {
  SwitchContext* from;
  SwitchContext* to;
  void* data;
};

// First thing on arrival in any context: finish the sanitizer switch and record the context we
// left, now suspended.
inline void arrive(SwitchContext* self, const bctx::transfer_t& t) {
  auto* tr = static_cast<Transfer*>(t.data);
#ifdef SPINDLE_ASAN
  const void* old_lo = nullptr;
  std::size_t old_size = 0;
  __sanitizer_finish_switch_fiber(self != nullptr ? self->asan_fake_stack : nullptr, &old_lo,
                                  &old_size);
  if (tr->from->stack_lo == nullptr) {  // a thread context: learn its bounds now
    tr->from->stack_lo = old_lo;
    tr->from->stack_size = old_size;
  }
#else
  (void)self;
#endif
  tr->from->fctx = t.fctx;
}

void trampoline(bctx::transfer_t t) {
  auto* tr = static_cast<Transfer*>(t.data);
  SwitchContext* self = tr->to;
  arrive(nullptr, t);
  EntryFn entry = self->entry;
  self->entry = nullptr;
  entry(tr->data);
  __builtin_unreachable();  // entry leaves with a final switch_to(..., from_exits = true)
}

// jump_fcontext(to, vp), entered by a jump instead of a call. Boost's jump_fcontext leaves by
// `jmp *%r8`, not `ret`: after a `call` into it, the CPU's return stack buffer keeps an entry
// that no `ret` pops, so every return on the resumed side is predicted one frame off and
// mispredicts, all the way up its call chain (five or more per switch; a third of the time of a
// ping-pong hand-off went to the instructions just after those returns). Pushing the return
// address ourselves and jumping leaves the buffer as it was, so the resumed side's returns,
// which mirror the suspended side's calls, are predicted. The same jump_fcontext runs: this
// changes only how it is entered.
//
// It behaves as a call as far as registers go: the caller-saved ones are clobbered (the resumed
// side restores its own callee-saved ones), and 128 bytes are skipped first because switch_to
// may keep locals in the red zone below the stack pointer, where the push would land.
#if defined(__x86_64__) && !defined(SPINDLE_PLAIN_JUMP_FCONTEXT)
inline bctx::transfer_t jump(bctx::fcontext_t to, void* vp) {
  void* fctx;
  void* data;
  asm volatile(
      "sub $128, %%rsp\n\t"
      "lea 1f(%%rip), %%rax\n\t"
      "push %%rax\n\t"
      "jmp jump_fcontext@PLT\n"
      "1:\n\t"
      "add $128, %%rsp"
      : "=a"(fctx), "=d"(data), "+D"(to), "+S"(vp)
      :
      : "rcx", "r8", "r9", "r10", "r11", "memory", "cc",
        "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
        "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
        "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
  return bctx::transfer_t{fctx, data};
}
#else
inline bctx::transfer_t jump(bctx::fcontext_t to, void* vp) { return bctx::jump_fcontext(to, vp); }
#endif

}  // namespace

void prepare_stack_top(char* lo, char* hi) noexcept {
#ifdef SPINDLE_ASAN
  __asan_unpoison_memory_region(lo, static_cast<std::size_t>(hi - lo));
#else
  (void)lo;
  (void)hi;
#endif
}

void make_context(SwitchContext& ctx, char* lo, char* hi, EntryFn entry) {
#ifdef SPINDLE_ASAN
  // A recycled stack may carry poison from the frames of its previous fiber.
  __asan_unpoison_memory_region(lo, static_cast<std::size_t>(hi - lo));
#endif
  ctx.fctx = bctx::make_fcontext(hi, static_cast<std::size_t>(hi - lo), &trampoline);
  ctx.stack_lo = lo;
  ctx.stack_size = static_cast<std::size_t>(hi - lo);
  ctx.entry = entry;
  ctx.asan_fake_stack = nullptr;
#ifdef SPINDLE_TSAN
  ctx.tsan_fiber = __tsan_create_fiber(0);
#else
  ctx.tsan_fiber = nullptr;
#endif
}

void init_thread_context(SwitchContext& ctx) {
  ctx = SwitchContext{};
#ifdef SPINDLE_TSAN
  ctx.tsan_fiber = __tsan_get_current_fiber();
#endif
}

// Not instrumented by ASan: with detect_stack_use_after_return, `tr` would live on the fiber's
// fake stack, which ASan frees when a finishing fiber leaves for good (the first argument of
// start_switch is null) while the context we switch to still reads it on arrival.
#ifdef SPINDLE_ASAN
__attribute__((no_sanitize("address")))
#endif
void* switch_to(SwitchContext& from, SwitchContext& to, void* data, bool from_exits) {
  Transfer tr{&from, &to, data};
#ifdef SPINDLE_ASAN
  __sanitizer_start_switch_fiber(from_exits ? nullptr : &from.asan_fake_stack, to.stack_lo,
                                 to.stack_size);
#endif
#ifdef SPINDLE_TSAN
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
  (void)from_exits;
  bctx::transfer_t t = jump(to.fctx, &tr);
  // Resumed: somebody switched back into `from`.
  arrive(&from, t);
  return static_cast<Transfer*>(t.data)->data;
}

void destroy_context(SwitchContext& ctx) {
#ifdef SPINDLE_TSAN
  if (ctx.tsan_fiber != nullptr) __tsan_destroy_fiber(ctx.tsan_fiber);
#endif
  ctx.tsan_fiber = nullptr;
}

}  // namespace spindle::detail
