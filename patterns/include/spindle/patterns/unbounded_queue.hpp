// UnboundedQueue<T>: a FIFO whose push never blocks and whose memory shrinks after a burst; and
// unbounded_chan<T>(), the seed's "queue channel" (a Sender/Receiver pair with unbounded
// buffering in between) built on it.
//
//   UnboundedQueue<Job> q;                     // or, channel-shaped:
//   q.push(job);                               //   auto [in, out] = unbounded_chan<Job>(ctx);
//   auto j = q.pop(ctx);                       //   in.send(job); ... out.recv();
//
// The seed's Queue kept `queue = queue[1:]`, so the slice's array only ever grows: after a
// burst of a million items the memory stays. Here the buffer is a ring that doubles when full
// and halves when at most a quarter full (never below min_capacity): memory follows the
// backlog, with hysteresis so that a queue hovering around a size does not resize on every
// operation; both are amortised O(1). capacity() exposes it.
//
// Semantics: FIFO; push() never blocks (returns false, leaving v untouched, once closed: it is
// never dropped silently); pop() parks until an item or close: nullopt when closed and drained
// (Go's `v, ok := <-ch`); pop(ctx) likewise but returns ctx.err() if ctx is done first, and
// errc::closed when closed and drained; close() is idempotent and wakes every waiter; items
// pushed before close are still popped.
// unbounded_chan: a pump fiber moves values from `in` to the ring and from the ring to `out`;
// when `in` is closed it delivers what is buffered and then closes `out`; when ctx is done it
// closes `out` at once (buffered values are dropped: that is what cancelling means).
//
// Thread-safety: every member may be called concurrently (one spindle::Mutex and a Cond).
// Memory ordering: a push happens-before the pop that returns its item.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/cond.hpp>
#include <spindle/context.hpp>
#include <spindle/mutex.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/patterns/errors.hpp>
#include <spindle/patterns/result.hpp>

namespace spindle::patterns {

namespace detail {

// The growable, shrinkable ring both forms share. Not synchronised.
template <class T>
class Ring {
 public:
  explicit Ring(std::size_t min_capacity) : min_(min_capacity == 0 ? 1 : min_capacity), buf_(min_) {}

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::size_t capacity() const noexcept { return buf_.size(); }

  void push(T v) {
    if (size_ == buf_.size()) resize(buf_.size() * 2);
    buf_[(head_ + size_) % buf_.size()].emplace(std::move(v));
    ++size_;
  }
  [[nodiscard]] T& front() noexcept { return *buf_[head_]; }
  T pop() {
    T v = std::move(*buf_[head_]);
    buf_[head_].reset();
    head_ = (head_ + 1) % buf_.size();
    --size_;
    // Halve at a quarter full: after the halving it is half full, so neither a push nor a pop
    // right after can resize again (the hysteresis that keeps this amortised O(1)).
    if (buf_.size() > min_ && size_ <= buf_.size() / 4) resize(std::max(min_, buf_.size() / 2));
    return v;
  }
  void clear() noexcept {
    buf_.assign(min_, std::nullopt);
    head_ = size_ = 0;
  }

 private:
  void resize(std::size_t cap) {
    std::vector<std::optional<T>> nb(cap);
    for (std::size_t i = 0; i < size_; ++i) nb[i].emplace(std::move(*buf_[(head_ + i) % buf_.size()]));
    buf_ = std::move(nb);
    head_ = 0;
  }

  std::size_t min_;
  std::vector<std::optional<T>> buf_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

}  // namespace detail

template <class T>
class UnboundedQueue {
 public:
  explicit UnboundedQueue(std::size_t min_capacity = 16) : ring_(min_capacity) {}
  UnboundedQueue(const UnboundedQueue&) = delete;
  UnboundedQueue& operator=(const UnboundedQueue&) = delete;

  // Appends v; never blocks. False (v untouched) once the queue is closed.
  [[nodiscard]] bool push(T& v) {
    {
      std::lock_guard lock(mu_);
      if (closed_) return false;
      ring_.push(std::move(v));
      if (ring_.size() > peak_) peak_ = ring_.size();
    }
    nonempty_.signal();
    return true;
  }
  [[nodiscard]] bool push(T&& v) { return push(v); }

  // The oldest item, parking until there is one; nullopt once closed and drained.
  [[nodiscard]] std::optional<T> pop() {
    std::unique_lock lock(mu_);
    nonempty_.wait(lock, [&] { return !ring_.empty() || closed_; });
    if (ring_.empty()) return std::nullopt;
    return take_locked();
  }
  // The same, giving up when ctx is done: ctx.err(); errc::closed once closed and drained.
  [[nodiscard]] Result<T> pop(const Context& ctx) {
    std::unique_lock lock(mu_);
    if (std::error_code ec = nonempty_.wait(lock, ctx, [&] { return !ring_.empty() || closed_; })) {
      return ec;
    }
    if (ring_.empty()) return make_error_code(errc::closed);
    return take_locked();
  }
  // The oldest item if there is one now.
  [[nodiscard]] std::optional<T> try_pop() {
    std::lock_guard lock(mu_);
    if (ring_.empty()) return std::nullopt;
    return take_locked();
  }

  // No more pushes; waiters wake (and drain what is left). Idempotent.
  void close() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    nonempty_.broadcast();
  }

  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mu_);
    return ring_.size();
  }
  // Slots allocated now (follows the backlog: see the file comment).
  [[nodiscard]] std::size_t capacity() const {
    std::lock_guard lock(mu_);
    return ring_.capacity();
  }
  // The largest size seen.
  [[nodiscard]] std::size_t peak() const {
    std::lock_guard lock(mu_);
    return peak_;
  }
  [[nodiscard]] bool closed() const {
    std::lock_guard lock(mu_);
    return closed_;
  }

 private:
  T take_locked() {
    T v = ring_.pop();
    // Another waiter may be able to proceed (closed and items left, or a signal raced).
    if (!ring_.empty()) nonempty_.signal();
    return v;
  }

  mutable spindle::Mutex mu_;
  spindle::Cond nonempty_;
  detail::Ring<T> ring_;
  bool closed_ = false;
  std::size_t peak_ = 0;
};

// The channel-shaped form (see the file comment).
template <class T>
struct UnboundedChan {
  Sender<T> in;
  Receiver<T> out;
};

template <class T>
[[nodiscard]] UnboundedChan<T> unbounded_chan(const Context& ctx, std::size_t min_capacity = 16) {
  Chan<T> in(0), out(0);
  spindle::go(SpawnOptions{.name = "unbounded_chan"}, [ctx, in, out, min_capacity] {
    const Receiver<std::monostate> done = ctx.done();
    detail::Ring<T> ring(min_capacity);
    bool in_open = true;
    while (in_open || !ring.empty()) {
      Select<3> sel;
      std::optional<T> got;
      const int recv_case = in_open ? sel.recv(in, &got) : -1;
      const int send_case = ring.empty() ? -1 : sel.send(out, ring.front());
      const int done_case = sel.recv(done);
      const int k = sel.wait();
      if (k == done_case) break;
      if (k == recv_case) {
        if (got) {
          ring.push(std::move(*got));
        } else {
          in_open = false;  // closed: deliver what is buffered, then close out
        }
      } else if (k == send_case) {
        (void)ring.pop();  // the value was moved out by the send
      }
    }
    out.close();
  });
  return {in, out};
}

}  // namespace spindle::patterns
