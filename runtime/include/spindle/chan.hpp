// Chan<T>: Go's channels. Sender<T> and Receiver<T> are its send-only and receive-only ends.
//
//   spindle::Chan<int> ch(16);                 // buffered, capacity 16 (0: unbuffered)
//   spindle::go([ch] { for (int i = 0; i < 3; ++i) ch.send(i); ch.close(); });
//   for (int v : ch) fmt::print("{}\n", v);    // ends once closed and drained
//
// Semantics are Go's (SEMANTICS.md, "Channels and select"):
//  * An unbuffered channel is a rendezvous; a buffered one is a FIFO of capacity cap(). Blocked
//    senders and receivers are served first-come first-served. A value goes straight from a
//    sender to a parked receiver (and back), never through the buffer.
//  * A default-constructed Chan is the nil channel: send and recv on it block forever (until a
//    deadline or cancel), try_ forms report would_block, close throws. Set a select case's
//    channel to nil to disable it.
//  * close(): later sends throw ClosedChannelError, and so do sends already blocked; buffered
//    values are still received in order, then every receive returns at once with "closed"
//    (std::nullopt). Close wakes every blocked sender and receiver with a definite outcome.
//  * Misuse throws, with Go's wording: "send on closed channel", "close of closed channel"
//    (ClosedChannelError), "close of nil channel" (ChanError).
//
// Thread-safety: every operation may be called concurrently from any fiber, and from plain
// threads (blocking ones then block the thread). Handles are cheap to copy (an atomic reference
// count) and are meant to be captured by value, as Go's are; the channel lives until its last
// handle goes.
//
// Memory ordering (Go's memory model): a send happens-before the matching receive completes; a
// close happens-before a receive that returns because of it; on an unbuffered channel the receive
// happens-before the send completes; the k-th receive on a channel of capacity C happens-before
// the (k+C)-th send completes.
//
// Requirements on T: nothrow move-constructible and nothrow destructible (every standard
// container, string and smart pointer qualifies; box anything else in std::unique_ptr), so that
// no element operation can fail while a channel lock is held. T needs no default constructor and
// may be move-only. Rejected: supporting throwing moves by boxing such T on the heap behind the
// user's back; an explicit unique_ptr says what it costs. The destructor of a moved-from element,
// and of a value a receive drops (Select<N>::recv without `out`), may run while the channel's
// lock is held: it must not block or touch channels.
#pragma once

#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <optional>
#include <source_location>
#include <system_error>
#include <type_traits>
#include <utility>

#include <spindle/clock.hpp>
#include <spindle/detail/chan_core.hpp>
#include <spindle/detail/context_fwd.hpp>
#include <spindle/errors.hpp>

namespace spindle {

// Misuse of a channel: "close of nil channel", "makechan: size out of range".
class ChanError : public Panic {
 public:
  using Panic::Panic;
};

// A send on a closed channel (including one blocked when the close happened) or a second close.
class ClosedChannelError : public ChanError {
 public:
  using ChanError::ChanError;
};

// The result of a receive that can fail in more than one way (try_recv, recv_for, recv_until).
// `value` is engaged exactly when status == ok.
template <class T>
struct [[nodiscard]] RecvResult {
  ChanStatus status = ChanStatus::would_block;
  std::optional<T> value;

  [[nodiscard]] bool ok() const noexcept { return status == ChanStatus::ok; }
  explicit operator bool() const noexcept { return ok(); }
  T& operator*() & noexcept { return *value; }
  T&& operator*() && noexcept { return std::move(*value); }
  T* operator->() noexcept { return std::addressof(*value); }
};

template <class T> class Chan;
template <class T> class Sender;
template <class T> class Receiver;

namespace detail {

template <class T>
concept ChanElement = std::is_object_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T> &&
                      !std::is_array_v<T>;

template <class T>
inline constexpr bool kChanElementOk =
    std::is_nothrow_move_constructible_v<T> && std::is_nothrow_destructible_v<T>;

// The send half of the API, shared by Chan<T> and Sender<T>. D exposes detail_core().
template <class D, class T>
class ChanSendOps {
 public:
  // Sends `value`, blocking until a receiver takes it (unbuffered) or there is room (buffered).
  // Blocks forever on a nil channel. Throws ClosedChannelError if the channel is closed, or
  // gets closed while this waits.
  void send(T value, std::source_location where = std::source_location::current()) const {
    detail::chan_send_blocking(core(), std::addressof(value), where);
  }

  // Sends without blocking. Returns ok (value moved from) or would_block (value untouched).
  // Throws ClosedChannelError on a closed channel, like Go's select-with-default does.
  [[nodiscard]] ChanStatus try_send(T& value) const {
    return detail::chan_send(core(), std::addressof(value), false, kNoDeadline, nullptr, {});
  }
  [[nodiscard]] ChanStatus try_send(T&& value) const { return try_send(value); }

  // Sends, giving up at `deadline`. Returns ok (value moved from) or timeout (value untouched).
  // Throws ClosedChannelError as send() does.
  [[nodiscard]] ChanStatus send_until(T& value, TimePoint deadline,
                                      std::source_location where = std::source_location::current()) const {
    return detail::chan_send(core(), std::addressof(value), true, deadline, nullptr, where);
  }
  [[nodiscard]] ChanStatus send_until(T&& value, TimePoint deadline,
                                      std::source_location where = std::source_location::current()) const {
    return send_until(value, deadline, where);
  }
  template <class Rep, class Period>
  [[nodiscard]] ChanStatus send_for(T& value, std::chrono::duration<Rep, Period> d,
                                    std::source_location where = std::source_location::current()) const {
    return send_until(value, deadline_after(d), where);
  }
  template <class Rep, class Period>
  [[nodiscard]] ChanStatus send_for(T&& value, std::chrono::duration<Rep, Period> d,
                                    std::source_location where = std::source_location::current()) const {
    return send_until(value, deadline_after(d), where);
  }

  // Closes the channel (see the file comment). Throws ChanError on a nil channel and
  // ClosedChannelError on a closed one. Every blocked receiver is ended by the time it returns;
  // with more than 64 of them, called from a fiber outside a catch block, it may yield (and
  // resume on another worker) between the batches it wakes.
  void close() const { detail::chan_close(core()); }

  // Sends unless ctx is done first (context.hpp): an empty code when the value was sent (moved
  // from), else ctx.err() with the value untouched: a value is never both delivered and
  // reported cancelled. A context already done fails at once, even if the send could complete.
  // Blocks until then on a nil channel. Throws ClosedChannelError as send() does.
  [[nodiscard]] std::error_code send(const Context& ctx, T& value,
                                     std::source_location where = std::source_location::current()) const {
    return detail::context_wait(ctx, [&](TimePoint d, const detail::Interrupt* in) {
      return detail_send(value, d, in, where) == ChanStatus::ok ? detail::WakeReason::notified
                                                                : detail::WakeReason::canceled;
    });
  }
  [[nodiscard]] std::error_code send(const Context& ctx, T&& value,
                                     std::source_location where = std::source_location::current()) const {
    return send(ctx, value, where);
  }

  // Internal form for context-aware sends: blocks until sent (ok), `deadline` (timeout) or the
  // interrupt fires (canceled); the value is moved from only on ok. Throws as send() does.
  [[nodiscard]] ChanStatus detail_send(T& value, TimePoint deadline, const detail::Interrupt* interrupt,
                                       std::source_location where) const {
    return detail::chan_send(core(), std::addressof(value), true, deadline, interrupt, where);
  }

 private:
  [[nodiscard]] detail::ChanCore* core() const noexcept {
    return static_cast<const D*>(this)->detail_core();
  }
};

// The receive half of the API, shared by Chan<T> and Receiver<T>.
template <class D, class T>
class ChanRecvOps {
 public:
  // Receives a value, blocking until one is available. Returns std::nullopt once the channel
  // is closed and drained (Go's `v, ok := <-ch` with ok == false). Blocks forever on a nil
  // channel.
  std::optional<T> recv(std::source_location where = std::source_location::current()) const {
    std::optional<T> out;
    detail::chan_recv_blocking(core(), &out, &detail::put_optional<T>, where);
    return out;
  }

  // Receives without blocking: ok with a value, closed (closed and drained) or would_block.
  [[nodiscard]] RecvResult<T> try_recv() const {
    RecvResult<T> r;
    r.status = detail::chan_recv(core(), &r.value, &detail::put_optional<T>, false, kNoDeadline,
                                 nullptr, {});
    return r;
  }

  // Receives, giving up at `deadline`: ok with a value, closed, or timeout.
  [[nodiscard]] RecvResult<T> recv_until(TimePoint deadline,
                                         std::source_location where = std::source_location::current()) const {
    return detail_recv(deadline, nullptr, where);
  }
  template <class Rep, class Period>
  [[nodiscard]] RecvResult<T> recv_for(std::chrono::duration<Rep, Period> d,
                                       std::source_location where = std::source_location::current()) const {
    return detail_recv(deadline_after(d), nullptr, where);
  }

  // Receives unless ctx is done first (context.hpp): ok with a value, closed (closed and
  // drained), or canceled (ctx is done, ctx.err() says why, and no value was taken: a value is
  // never both received and reported cancelled). A context already done gives canceled at once,
  // even if a value is ready. Blocks until then on a nil channel.
  [[nodiscard]] RecvResult<T> recv(const Context& ctx,
                                   std::source_location where = std::source_location::current()) const {
    if (detail::context_err(ctx)) return {ChanStatus::canceled, std::nullopt};
    const detail::Interrupt in = detail::context_interrupt(ctx);
    RecvResult<T> r = detail_recv(detail::context_deadline(ctx), in.self != nullptr ? &in : nullptr, where);
    if (r.status == ChanStatus::timeout) r.status = ChanStatus::canceled;  // the context's deadline
    return r;
  }

  // Internal form for context-aware receives: ok with a value, closed, timeout or canceled.
  [[nodiscard]] RecvResult<T> detail_recv(TimePoint deadline, const detail::Interrupt* interrupt,
                                          std::source_location where) const {
    RecvResult<T> r;
    r.status = detail::chan_recv(core(), &r.value, &detail::put_optional<T>, true, deadline,
                                 interrupt, where);
    return r;
  }

  // Range-for: `for (T v : ch)` receives until the channel is closed and drained. The iterator
  // yields an rvalue (T&&), so move-only T works; bind it with `T`, `auto&&` or `const auto&`.
  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    using reference = T&&;
    using pointer = T*;

    iterator() = default;
    explicit iterator(detail::ChanCore* c) : c_(c) { ++*this; }
    T&& operator*() const noexcept { return std::move(*cur_); }
    T* operator->() const noexcept { return std::addressof(*cur_); }
    iterator& operator++() {
      cur_.reset();
      detail::chan_recv_blocking(c_, &cur_, &detail::put_optional<T>,
                                 std::source_location::current());
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
      return !it.cur_.has_value();
    }

   private:
    detail::ChanCore* c_ = nullptr;
    mutable std::optional<T> cur_;
  };
  iterator begin() const { return iterator(core()); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  [[nodiscard]] detail::ChanCore* core() const noexcept {
    return static_cast<const D*>(this)->detail_core();
  }
};

}  // namespace detail

// A channel of T (see the file comment). Copies share the channel.
template <class T>
class Chan : public detail::ChanSendOps<Chan<T>, T>, public detail::ChanRecvOps<Chan<T>, T> {
  static_assert(detail::ChanElement<T>, "Chan<T>: T must be a non-const, non-array object type");
  static_assert(detail::kChanElementOk<T>,
                "Chan<T>: T must be nothrow move-constructible and nothrow destructible "
                "(wrap it in std::unique_ptr)");

 public:
  using value_type = T;

  // The nil channel.
  Chan() noexcept = default;
  // A channel with room for `capacity` values (0: unbuffered). Any capacity is allowed.
  explicit Chan(std::size_t capacity)
      : ref_(detail::ChanCore::create(&detail::kElemOps<T>, capacity)) {}

  // Values buffered now (racy snapshot, as in Go); 0 for a nil channel.
  [[nodiscard]] std::size_t len() const noexcept { return ref_.get() ? ref_.get()->len() : 0; }
  // The capacity given at creation; 0 for a nil or unbuffered channel.
  [[nodiscard]] std::size_t cap() const noexcept { return ref_.get() ? ref_.get()->cap() : 0; }
  [[nodiscard]] bool is_nil() const noexcept { return ref_.get() == nullptr; }
  explicit operator bool() const noexcept { return !is_nil(); }
  // Same channel (Go's ==).
  friend bool operator==(const Chan& a, const Chan& b) noexcept {
    return a.ref_.get() == b.ref_.get();
  }

  [[nodiscard]] detail::ChanCore* detail_core() const noexcept { return ref_.get(); }

  // For time channels and adapters: wraps an owned core (must have been created for T).
  static Chan detail_adopt(detail::ChanCore* c) noexcept {
    Chan ch;
    ch.ref_ = detail::ChanRef(c);
    return ch;
  }

 private:
  friend class Sender<T>;
  friend class Receiver<T>;
  detail::ChanRef ref_;
};

// The send-only end of a Chan<T> (Go's chan<- T). Converts implicitly from Chan<T>.
template <class T>
class Sender : public detail::ChanSendOps<Sender<T>, T> {
 public:
  using value_type = T;
  Sender() noexcept = default;
  Sender(const Chan<T>& ch) noexcept : ref_(ch.ref_) {}        // NOLINT: implicit, like Go
  Sender(Chan<T>&& ch) noexcept : ref_(std::move(ch.ref_)) {}  // NOLINT

  [[nodiscard]] std::size_t len() const noexcept { return ref_.get() ? ref_.get()->len() : 0; }
  [[nodiscard]] std::size_t cap() const noexcept { return ref_.get() ? ref_.get()->cap() : 0; }
  [[nodiscard]] bool is_nil() const noexcept { return ref_.get() == nullptr; }
  explicit operator bool() const noexcept { return !is_nil(); }
  friend bool operator==(const Sender& a, const Sender& b) noexcept {
    return a.ref_.get() == b.ref_.get();
  }
  [[nodiscard]] detail::ChanCore* detail_core() const noexcept { return ref_.get(); }

 private:
  detail::ChanRef ref_;
};

// The receive-only end of a Chan<T> (Go's <-chan T). Converts implicitly from Chan<T>.
template <class T>
class Receiver : public detail::ChanRecvOps<Receiver<T>, T> {
 public:
  using value_type = T;
  Receiver() noexcept = default;
  Receiver(const Chan<T>& ch) noexcept : ref_(ch.ref_) {}        // NOLINT: implicit, like Go
  Receiver(Chan<T>&& ch) noexcept : ref_(std::move(ch.ref_)) {}  // NOLINT

  [[nodiscard]] std::size_t len() const noexcept { return ref_.get() ? ref_.get()->len() : 0; }
  [[nodiscard]] std::size_t cap() const noexcept { return ref_.get() ? ref_.get()->cap() : 0; }
  [[nodiscard]] bool is_nil() const noexcept { return ref_.get() == nullptr; }
  explicit operator bool() const noexcept { return !is_nil(); }
  friend bool operator==(const Receiver& a, const Receiver& b) noexcept {
    return a.ref_.get() == b.ref_.get();
  }
  [[nodiscard]] detail::ChanCore* detail_core() const noexcept { return ref_.get(); }

 private:
  detail::ChanRef ref_;
};

// Go's make(chan T, capacity).
template <class T>
[[nodiscard]] Chan<T> make_chan(std::size_t capacity = 0) {
  return Chan<T>(capacity);
}

}  // namespace spindle
