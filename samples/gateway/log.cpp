// EventLog (see log.hpp).
#include "log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <mutex>
#include <shared_mutex>

#include <fmt/format.h>

#include <spindle/net/blocking.hpp>

namespace gateway {
namespace {

// RFC 3339 UTC with milliseconds: "2024-05-01T12:00:00.123Z". Wall time is for humans here;
// nothing in the gateway's logic reads it.
std::string now_rfc3339() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03}Z", buf, ms);
}

// write(2) until done; EINTR retried. Runs on the blocking pool.
void write_all_fd(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // a log that cannot be written is not worth failing requests for
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

}  // namespace

EventLog::Target EventLog::Target::from_flag(const std::string& flag) {
  if (flag == "-") return stderr_();
  if (flag == "off") return off();
  return file(flag);
}

EventLog::EventLog(Target target) : target_(std::move(target)) {}

EventLog::~EventLog() {
  close();
}

std::string EventLog::start() {
  if (target_.kind == Target::Kind::off) return "";
  if (target_.kind == Target::Kind::stderr_stream) {
    fd_ = STDERR_FILENO;
  } else if (target_.kind == Target::Kind::file) {
    const std::string path = target_.path;
    auto [fd, err] = spindle::blocking([path]() -> std::pair<int, int> {
      const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
      return {fd, fd < 0 ? errno : 0};
    });
    if (fd < 0) return fmt::format("cannot open log file '{}': {}", path, std::strerror(err));
    fd_ = fd;
    own_fd_ = true;
  }
  {
    std::lock_guard lock(mu_);
    open_ = true;
  }
  wg_.go([this] { writer(); });
  return "";
}

void EventLog::emit(std::string_view event, nlohmann::json fields) {
  if (target_.kind == Target::Kind::off) return;
  nlohmann::json j = nlohmann::json::object();
  j["ts"] = now_rfc3339();
  j["event"] = event;
  for (auto& [k, v] : fields.items()) j[k] = std::move(v);
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  std::shared_lock lock(mu_);
  if (!open_) return;
  queue_.send(std::move(line));
}

void EventLog::writer() {
  std::string batch;
  for (;;) {
    std::optional<std::string> first = queue_.recv();
    if (!first) return;  // closed and drained
    batch = std::move(*first);
    std::uint64_t lines = 1;
    while (lines < kBatch) {
      auto more = queue_.try_recv();
      if (!more) break;
      batch += *more;
      ++lines;
    }
    if (target_.kind == Target::Kind::callback) {
      target_.callback(batch);
    } else {
      const int fd = fd_;
      spindle::blocking([fd, &batch] { write_all_fd(fd, batch); });
    }
    written_.fetch_add(lines, std::memory_order_relaxed);
  }
}

void EventLog::close() {
  {
    std::lock_guard lock(mu_);
    if (!open_) return;
    open_ = false;
    queue_.close();
  }
  wg_.wait();
  if (own_fd_) {
    const int fd = std::exchange(fd_, -1);
    own_fd_ = false;
    spindle::blocking([fd] { ::close(fd); });
  }
}

}  // namespace gateway
