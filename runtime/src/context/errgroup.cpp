// ErrGroup (spindle/errgroup.hpp): the limit semaphore, the join counter and the first failure,
// under one SpinLock, built on park/ready.
//
// Invariants:
//  * active_ counts functions started and not finished; wait() returns once it is 0.
//  * tokens_ counts functions holding a token of the current limit generation (gen_); a function
//    started under an older generation (before set_limit) returns nothing to the new one.
//  * The first failure is recorded once (failed_); the context is cancelled outside mu_ (cancel
//    runs user stop_callbacks) and before active_ drops, so the group is still alive then.
//  * Woken waiters are unlinked under mu_ and readied after it is released; after that nothing
//    touches the group (a wait() that returns may destroy it at once).
#include <spindle/errgroup.hpp>

#include <cstdio>
#include <string>

#include <fmt/format.h>

namespace spindle {

using detail::Waiter;

ErrGroupWithContext ErrGroup::with_context(const Context& parent) {
  auto [ctx, cancel] = with_cancel_cause(parent);
  return ErrGroupWithContext{ErrGroup(std::move(cancel)), std::move(ctx)};
}

namespace {

void ready_list(Waiter* w) noexcept {
  while (w != nullptr) {
    Waiter* next = w->next;  // read before ready(): the waiter may vanish right after
    w->wake(detail::WakeReason::notified);
    w = next;
  }
}

std::error_code cause_of(std::error_code ec, const std::exception_ptr& ep) {
  if (ep) return make_error_code(errc::exception);
  return ec;
}

}  // namespace

ErrGroup::Slot ErrGroup::acquire(bool block) {
  mu_.lock();
  for (;;) {
    if (limit_ < 0) {
      ++active_;
      mu_.unlock();
      return {true, false, 0};
    }
    if (tokens_ < limit_) {
      ++tokens_;
      ++active_;
      const Slot s{true, true, gen_};
      mu_.unlock();
      return s;
    }
    if (!block) {
      mu_.unlock();
      return {};
    }
    Waiter w;
    w.next = nullptr;
    w.prev = limit_tail_;
    if (limit_tail_ != nullptr) {
      limit_tail_->next = &w;
    } else {
      limit_head_ = &w;
    }
    limit_tail_ = &w;
    (void)detail::park(w, {detail::WaitReason::errgroup, this},
                       {.unlock = detail::SpinLock::unlock_fn, .unlock_arg = &mu_});
    // Woken by a finishing function or set_limit, which unlinked us: re-check (a try_go may
    // have taken the token first; then its finish wakes the next waiter).
    mu_.lock();
  }
}

void ErrGroup::release_failed_launch(Slot s) noexcept { finish({}, nullptr, s); }

void ErrGroup::finish(std::error_code ec, std::exception_ptr ep, Slot s) noexcept {
  if (ec || ep) {
    bool first = false;
    mu_.lock();
    if (!failed_) {
      failed_ = true;
      err_ = ec;
      exc_ = ep;
      first = true;
    }
    mu_.unlock();
    if (first) cancel_.cancel(cause_of(ec, ep));
  }
  Waiter* wake_limit = nullptr;
  Waiter* wake_all = nullptr;
  mu_.lock();
  if (s.held && s.gen == gen_) {
    --tokens_;
    if (limit_head_ != nullptr) {
      wake_limit = limit_head_;
      limit_head_ = wake_limit->next;
      if (limit_head_ != nullptr) {
        limit_head_->prev = nullptr;
      } else {
        limit_tail_ = nullptr;
      }
      wake_limit->next = nullptr;
    }
  }
  if (--active_ == 0) {
    wake_all = waiters_;
    waiters_ = nullptr;
  }
  mu_.unlock();
  // The group may be destroyed from here on (a woken wait() returns).
  if (wake_limit != nullptr) wake_limit->wake(detail::WakeReason::notified);
  ready_list(wake_all);
}

void ErrGroup::set_limit(int n) {
  Waiter* wake = nullptr;
  mu_.lock();
  if (n >= 0 && limit_ >= 0 && tokens_ != 0) {
    const int active = tokens_;
    mu_.unlock();
    throw SyncError(fmt::format(
        "errgroup: modify limit while {} goroutines in the group are still active", active));
  }
  limit_ = n < 0 ? -1 : n;
  tokens_ = 0;
  ++gen_;
  // Blocked go() callers re-check against the new limit.
  wake = limit_head_;
  limit_head_ = limit_tail_ = nullptr;
  mu_.unlock();
  ready_list(wake);
}

void ErrGroup::join() noexcept {
  mu_.lock();
  while (active_ != 0) {
    Waiter w;
    w.next = waiters_;
    waiters_ = &w;
    (void)detail::park(w, {detail::WaitReason::errgroup, this},
                       {.unlock = detail::SpinLock::unlock_fn, .unlock_arg = &mu_});
    mu_.lock();  // pairs with finish()'s unlock: it has let go of the group once we hold mu_
  }
  mu_.unlock();
}

std::error_code ErrGroup::wait() {
  join();
  mu_.lock();
  const std::error_code ec = err_;
  const std::exception_ptr ep = exc_;
  if (ep) delivered_ = true;
  mu_.unlock();
  cancel_.cancel(cause_of(ec, ep));
  if (ep) std::rethrow_exception(ep);
  return ec;
}

ErrGroup::~ErrGroup() {
  cancel_();  // stop the functions still running (a wait() already did this)
  join();
  if (exc_ && !delivered_) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(exc_);
    } catch (const std::exception& e) {
      what = e.what();
    }
    // (Anything not derived from std::exception escapes this noexcept destructor: terminate.)
    std::fprintf(stderr,
                 "spindle: ErrGroup destroyed without wait() delivering its first failure, an "
                 "exception: %s\n",
                 what.c_str());
    std::fflush(stderr);
    if (std::uncaught_exceptions() == 0) std::terminate();
  }
}

}  // namespace spindle
