// event_processor's core: the inotify event loop, the per-file debouncers, the action workers
// (processor.hpp has the shape and the invariants).
#include "processor.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <memory>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <openssl/evp.h>

#include <spindle/chan.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/net/fd.hpp>
#include <spindle/patterns/debounce.hpp>
#include <spindle/waitgroup.hpp>

extern char** environ;

namespace event_processor {

namespace {

using spindle::Context;
using spindle::patterns::DebounceSettings;
using spindle::patterns::Debouncer;

std::error_code sys_error(int err) { return {err, std::system_category()}; }

// What the event loop hands to the action workers once a file has been quiet.
struct Burst {
  std::string name;
  std::string path;
  std::uint64_t events = 0;
};

// Editor swap files, backups, and our own hidden files: not worth an action.
bool ignored_name(std::string_view name) {
  return name.empty() || name.front() == '.' || name.back() == '~';
}

constexpr std::uint32_t kWatchMask = IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVED_FROM |
                                     IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR |
                                     IN_EXCL_UNLINK;

}  // namespace

struct Processor::Impl {
  explicit Impl(Config c) : cfg(std::move(c)) {
    if (!cfg.log) cfg.log = [](std::string_view line) { fmt::print(stderr, "event_processor: {}\n", line); };
  }

  // One file's debouncer and the bookkeeping that says when it is idle (processor.hpp).
  struct Entry {
    std::unique_ptr<Debouncer<std::uint64_t>> deb;
    std::uint64_t last_seq = 0;                                    // event loop only
    std::shared_ptr<std::atomic<std::uint64_t>> delivered =        // written by the debouncer's fn
        std::make_shared<std::atomic<std::uint64_t>>(0);
    [[nodiscard]] bool idle() const { return delivered->load(std::memory_order_acquire) == last_seq; }
  };

  Config cfg;
  spindle::net::PollFd inotify;
  std::unordered_map<std::string, Entry> entries;  // event loop only
  spindle::Chan<Burst> bursts{64};

  std::atomic<std::uint64_t> n_events{0}, n_ignored{0}, n_bursts{0}, n_actions{0}, n_dropped{0},
      n_overflows{0}, n_live{0}, n_max_live{0};

  std::string path_of(std::string_view name) const {
    std::string p = cfg.dir;
    if (!p.empty() && p.back() != '/') p += '/';
    p += name;
    return p;
  }

  void set_live() {
    const std::uint64_t n = entries.size();
    n_live.store(n);
    if (n > n_max_live.load()) n_max_live.store(n);
  }

  // Drops the debouncers of files whose last burst has been handed over (see the invariant).
  void sweep() {
    std::erase_if(entries, [](const auto& kv) { return kv.second.idle(); });
    set_live();
  }

  Entry& entry_for(const Context& ctx, const std::string& name) {
    auto it = entries.find(name);
    if (it != entries.end()) return it->second;
    Entry e;
    DebounceSettings s{.wait = cfg.quiet_period, .clock = cfg.clock};
    // The trailing invocation: hand the burst to the workers, then mark it delivered. It runs in
    // a timer fiber (system clock) or inside ManualClock::advance (tests); never concurrently
    // with itself for one file.
    e.deb = std::make_unique<Debouncer<std::uint64_t>>(
        s, [this, ctx, name, path = path_of(name), delivered = e.delivered](std::uint64_t seq) {
          const std::uint64_t before = delivered->load(std::memory_order_relaxed);
          if (bursts.send(ctx, Burst{name, path, seq - before})) {
            n_dropped.fetch_add(1);  // shutting down
          } else {
            n_bursts.fetch_add(1);
          }
          delivered->store(seq, std::memory_order_release);
        });
    auto [pos, inserted] = entries.emplace(name, std::move(e));
    set_live();
    return pos->second;
  }

  // One event. Returns an error when the watch itself is gone.
  std::error_code handle(const Context& ctx, std::uint32_t mask, std::string_view name) {
    n_events.fetch_add(1);
    if (cfg.on_event) cfg.on_event(name, mask);
    if (mask & IN_Q_OVERFLOW) {
      n_overflows.fetch_add(1);
      cfg.log("inotify queue overflow: some changes were not seen");
      return {};
    }
    if (mask & (IN_IGNORED | IN_DELETE_SELF | IN_UNMOUNT)) {
      cfg.log(fmt::format("{}: the watched directory is gone", cfg.dir));
      return sys_error(ENOENT);
    }
    if (mask & IN_MOVE_SELF) {
      cfg.log(fmt::format("{}: the watched directory was moved", cfg.dir));
      return sys_error(ENOENT);
    }
    if ((mask & IN_ISDIR) || ignored_name(name)) {
      n_ignored.fetch_add(1);
      return {};
    }
    const std::string key(name);
    Entry& e = entry_for(ctx, key);
    e.deb->call(++e.last_seq);
    return {};
  }

  std::error_code loop(const Context& ctx) {
    std::vector<std::byte> buf(64 * 1024);  // heap: a fiber's stack is small; new's alignment suffices
    for (;;) {
      auto [n, err] = inotify.read(ctx, buf);
      if (err) return ctx.err() ? std::error_code() : err;
      sweep();
      std::size_t off = 0;
      while (off + sizeof(inotify_event) <= n) {
        const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
        const std::string_view name = ev->len > 0 ? std::string_view(ev->name) : std::string_view();
        if (std::error_code e = handle(ctx, ev->mask, name)) return e;
        off += sizeof(inotify_event) + ev->len;
      }
    }
  }

  ActionResult act(const Context& ctx, const Burst& b) {
    const spindle::TimePoint start = spindle::now();
    ActionResult r = cfg.exec.empty() ? describe_file(ctx, b.name, b.path)
                                      : exec_for_file(ctx, cfg.exec, b.name, b.path);
    r.events = b.events;
    r.took = spindle::now() - start;
    return r;
  }
};

Processor::Processor(Config cfg) : impl_(std::make_unique<Impl>(std::move(cfg))) {}
// The PollFd's last handle closes the descriptor (also after the runtime has ended).
Processor::~Processor() = default;

std::error_code Processor::open() {
  Impl& im = *impl_;
  if (im.cfg.quiet_period <= Duration::zero() || im.cfg.action_workers <= 0) {
    return std::make_error_code(std::errc::invalid_argument);
  }
  const int fd = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return sys_error(err);
  }
  auto [f, err] = spindle::net::PollFd::adopt(fd);
  if (err) return err;
  // inotify_add_watch only registers the watch in the kernel (no I/O on the directory's data);
  // it is as quick as the fcntl calls adopt() makes, so it runs here rather than on the pool.
  if (::inotify_add_watch(f.native_handle(), im.cfg.dir.c_str(), kWatchMask) < 0) {
    const int e = errno;
    (void)f.close();
    return sys_error(e);
  }
  im.inotify = f;
  return {};
}

std::error_code Processor::run(const Context& ctx) {
  Impl& im = *impl_;
  if (!im.inotify) return spindle::net::errc::closed;
  spindle::WaitGroup workers;
  for (int i = 0; i < im.cfg.action_workers; ++i) {
    workers.go([&im, ctx, bursts = im.bursts] {
      while (auto b = bursts.recv()) {
        ActionResult r;
        if (ctx.err()) {  // shutting down: report what is not run
          r.file = b->name;
          r.path = b->path;
          r.events = b->events;
          r.err = ctx.err();
        } else {
          r = im.act(ctx, *b);
        }
        im.n_actions.fetch_add(1);
        if (im.cfg.on_action) im.cfg.on_action(r);
      }
    });
  }
  const std::error_code result = im.loop(ctx);
  // Shutdown, in this order (processor.hpp): debouncers first (no fn runs after this), then the
  // channel, then the workers.
  for (const auto& [name, e] : im.entries) {
    if (e.deb->pending()) im.n_dropped.fetch_add(1);
  }
  im.entries.clear();
  im.set_live();
  im.bursts.close();
  workers.wait();
  (void)im.inotify.close();
  return result;
}

Stats Processor::stats() const {
  const Impl& im = *impl_;
  Stats s;
  s.events = im.n_events.load();
  s.ignored = im.n_ignored.load();
  s.bursts = im.n_bursts.load();
  s.actions = im.n_actions.load();
  s.dropped = im.n_dropped.load();
  s.overflows = im.n_overflows.load();
  s.live_debouncers = im.n_live.load();
  s.max_live_debouncers = im.n_max_live.load();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Actions (each runs on the blocking pool: file reads and waitpid block their thread)

ActionResult describe_file(const Context& ctx, std::string name, std::string path) {
  ActionResult base;
  base.file = std::move(name);
  base.path = std::move(path);
  auto res = spindle::blocking(ctx, [r = base]() mutable {
    // O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
    const int fd = ::open(r.path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err != ENOENT) r.err = sys_error(err);
      return r;  // gone by now: exists == false
    }
    r.exists = true;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return r;
    }
    r.regular = true;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr);
    std::vector<unsigned char> buf(64 * 1024);
    for (;;) {
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        r.err = sys_error(err);
        break;
      }
      if (n == 0) break;
      EVP_DigestUpdate(md.get(), buf.data(), static_cast<std::size_t>(n));
      r.size += static_cast<std::uint64_t>(n);
    }
    ::close(fd);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(md.get(), digest, &len);
    if (!r.err) {
      r.sha256.reserve(2 * len);
      for (unsigned int i = 0; i < len; ++i) r.sha256 += fmt::format("{:02x}", digest[i]);
    }
    return r;
  });
  if (res.err) {
    base.err = res.err;
    return base;
  }
  return std::move(*res.value);
}

ActionResult exec_for_file(const Context& ctx, std::string cmd, std::string name, std::string path) {
  ActionResult base;
  base.file = std::move(name);
  base.path = std::move(path);
  base.exec = true;
  auto res = spindle::blocking(ctx, [r = base, cmd = std::move(cmd)]() mutable {
    struct stat st {};
    r.exists = ::stat(r.path.c_str(), &st) == 0;
    r.regular = r.exists && S_ISREG(st.st_mode);
    if (r.regular) r.size = static_cast<std::uint64_t>(st.st_size);
    // The child starts with no blocked signals and the default dispositions of the ones a
    // terminal sends, whatever this pool thread had.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGQUIT, SIGHUP}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::string sh = "/bin/sh", dash_c = "-c", arg0 = "sh";
    char* argv[] = {sh.data(), dash_c.data(), cmd.data(), arg0.data(), r.path.data(), nullptr};
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, "/bin/sh", nullptr, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      r.err = sys_error(rc);
      return r;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
      const int err = errno;
      if (err != EINTR) {
        r.err = sys_error(err);
        return r;
      }
    }
    r.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  });
  if (res.err) {
    base.err = res.err;
    return base;
  }
  return std::move(*res.value);
}

}  // namespace event_processor
