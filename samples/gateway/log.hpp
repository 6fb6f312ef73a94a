// EventLog: structured logs, one JSON object per line, for the gateway's events (request, limit,
// breaker, degraded, evict, start, shutdown).
//
//   EventLog log(EventLog::Target::stderr_());
//   log.start();                                      // in a fiber: spawns the writer
//   log.emit("request", {{"status", 200}, {"route", "/api/fast"}});
//   log.close();                                      // drains what is queued, joins the writer
//
// Why a writer fiber: a write to a file or a pipe may block its thread, so it must go through
// spindle::blocking, and one blocking() hop per event would cost a pool round trip per request.
// emit() only formats the line and sends it on a buffered channel; the writer takes one line,
// then whatever else is queued (up to kBatch), and writes the batch with one blocking() call.
// A full channel applies back-pressure (emit parks) rather than dropping lines: under load the
// log keeps every event, and the load run counts its "request" lines against wrk's total.
//
// Thread-safety: emit may be called from any fiber concurrently; start/close from one owner.
// Lifetime: emit calls that start after close() returns are ignored (a shared lock over the send
// and an exclusive one around the channel's close make "send on closed channel" impossible).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <spindle/chan.hpp>
#include <spindle/rwmutex.hpp>
#include <spindle/waitgroup.hpp>

namespace gateway {

class EventLog {
 public:
  // Where lines go. A callback receives each batch of complete lines (each ends in '\n') on the
  // writer fiber; it must not block its thread.
  struct Target {
    enum class Kind { off, stderr_stream, file, callback } kind = Kind::off;
    std::string path;
    std::function<void(std::string_view)> callback;

    static Target off() { return {}; }
    static Target stderr_() { return {Kind::stderr_stream, {}, {}}; }
    static Target file(std::string path) { return {Kind::file, std::move(path), {}}; }
    static Target to(std::function<void(std::string_view)> f) { return {Kind::callback, {}, std::move(f)}; }
    // "-" stderr, "off", else a file path.
    static Target from_flag(const std::string& flag);
  };

  explicit EventLog(Target target);
  ~EventLog();
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Opens the target (a file is opened for appending, through spindle::blocking) and spawns the
  // writer fiber. Returns an error message, or "" on success. Call in a fiber.
  [[nodiscard]] std::string start();
  // Queues {"ts": <RFC 3339 UTC, ms>, "event": <event>, ...fields}. Parks while the queue is
  // full. Does nothing when the target is off, before start() or after close().
  void emit(std::string_view event, nlohmann::json fields = nlohmann::json::object());
  // Stops accepting events, waits until the writer has written everything queued, closes a
  // file. Idempotent.
  void close();

  [[nodiscard]] bool enabled() const noexcept { return target_.kind != Target::Kind::off; }
  // Lines written so far (all of them once close() returned).
  [[nodiscard]] std::uint64_t lines_written() const noexcept { return written_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kQueue = 8192;
  static constexpr std::size_t kBatch = 512;
  void writer();

  Target target_;
  int fd_ = -1;
  bool own_fd_ = false;
  spindle::Chan<std::string> queue_{kQueue};
  spindle::RWMutex mu_;  // shared: an emit's send; exclusive: close
  bool open_ = false;    // under mu_
  spindle::WaitGroup wg_;
  std::atomic<std::uint64_t> written_{0};
};

}  // namespace gateway
