// The execution tracer: per-worker event buffers and the Chrome Trace Event JSON writer.
//
// Recording. Each worker index has a Buffer (created on first use, kept for the process's life)
// whose events array exists only while a trace records. Only that worker's thread writes it,
// after a handshake with stop(): the writer sets `busy` (seq_cst) and then checks g_trace_on
// (seq_cst); stop() clears g_trace_on and then waits for `busy` to drop. One of the two always
// sees the other, so once stop() has seen every buffer idle, no writer touches an events array
// again and stop() may read and free them. Threads that are not workers (and workers past
// kMaxWorkers) append to one vector under g_outside_mu, checking g_trace_on under that mutex.
//
// Writing. stop() sorts every record by time and writes one JSON object: "M" metadata naming the
// process and each track, "X" complete events for fiber runs and timer firings, "i" instants
// for spawns, wakes and steals, and "s"/"f" flow events joining each spawn or wake to the next
// run of that fiber (computed here, so recording needs no per-fiber state).
#include "diag/trace.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include <spindle/errors.hpp>
#include <spindle/trace.hpp>

#include "sched/scheduler.hpp"

namespace spindle::detail {

std::atomic<bool> g_trace_on{false};

namespace {

enum class Kind : std::uint8_t { slice, spawn, wake, steal, timers, name };

struct Site {
  std::int64_t dur;       // slice, timers: ns
  std::uint64_t other;    // wake/spawn: the waker's fiber id (0: none); steal: the victim worker
  const char* file;       // park or spawn site (static storage: std::source_location's)
  const void* object;     // park: the object waited on
};

struct Event {
  std::int64_t ts;        // ns since start()
  std::uint64_t fiber;    // the fiber the event is about (0: none)
  Kind kind;
  TraceEnd end;           // slice: how the run ended
  WaitReason reason;      // slice ending in a park, wake: why the fiber waited
  std::uint8_t pad_;
  std::uint32_t line;     // site's line; steal: fibers taken; timers: timers fired
  union {
    Site site;
    char name[32];        // Kind::name: the fiber's name, NUL-terminated
  } u;
};
static_assert(sizeof(Event) == 56);
static_assert(std::is_trivially_default_constructible_v<Event>);  // new Event[n] touches nothing

constexpr int kMaxWorkers = 256;
constexpr int kOutsideTid = 100000;  // the track of threads outside the runtime

struct alignas(64) Buffer {
  std::atomic<std::uint32_t> busy{0};
  // Below: written by the owning worker inside the handshake, by start()/stop() outside it.
  Event* events = nullptr;
  std::size_t cap = 0;
  std::size_t count = 0;
  std::uint64_t dropped = 0;
  std::int64_t slice_start = 0;   // the run in progress on this worker
  std::uint64_t slice_fiber = 0;
  bool seen = false;              // gets a track in this trace
};

std::atomic<Buffer*> g_slots[kMaxWorkers];
std::mutex g_alloc_mu;          // creates slots; start/stop give and take their events arrays
std::size_t g_cap = 0;          // events per worker while recording, else 0 (under g_alloc_mu)
std::atomic<std::int64_t> g_origin{0};  // steady-clock ns at start()

std::mutex g_outside_mu;
std::vector<Event> g_outside;   // capacity fixed at start()
std::size_t g_outside_cap = 0;
std::uint64_t g_outside_dropped = 0;

std::mutex g_session_mu;        // start/stop
std::FILE* g_file = nullptr;
std::string g_path;

std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}
std::int64_t ts_now() noexcept { return steady_ns() - g_origin.load(std::memory_order_relaxed); }

void wait_idle(Buffer* b) noexcept {
  while (b->busy.load(std::memory_order_seq_cst) != 0) spin_pause();
}

Buffer* slot(int worker) noexcept {
  if (worker < 0 || worker >= kMaxWorkers) return nullptr;
  Buffer* b = g_slots[worker].load(std::memory_order_acquire);
  if (b != nullptr) return b;
  std::lock_guard lock(g_alloc_mu);  // once per worker index per process
  b = g_slots[worker].load(std::memory_order_relaxed);
  if (b == nullptr) {
    b = new Buffer();
    if (g_cap > 0) {
      b->events = new Event[g_cap];
      b->cap = g_cap;
    }
    g_slots[worker].store(b, std::memory_order_release);
  }
  return b;
}

// The handshake with stop() (see the top of the file). Valid only while `b` is non-null.
class Writer {
 public:
  explicit Writer(Buffer* b) noexcept : b_(b) {
    b_->busy.store(1, std::memory_order_seq_cst);
    if (!g_trace_on.load(std::memory_order_seq_cst)) {
      b_->busy.store(0, std::memory_order_release);
      b_ = nullptr;
      return;
    }
    b_->seen = true;
  }
  ~Writer() {
    if (b_ != nullptr) b_->busy.store(0, std::memory_order_release);
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  [[nodiscard]] Buffer* buffer() const noexcept { return b_; }
  Event* next() noexcept {
    if (b_->count == b_->cap) {
      ++b_->dropped;
      return nullptr;
    }
    return &b_->events[b_->count++];
  }

 private:
  Buffer* b_;
};

// Records one event on the caller's track: its worker's, or the outside track.
template <class Fill>
void record_here(Fill&& fill) noexcept {
  Worker* w = current_worker();
  if (Buffer* b = w != nullptr ? slot(w->index()) : nullptr) {
    Writer wr(b);
    if (wr.buffer() == nullptr) return;
    if (Event* e = wr.next()) fill(*e, ts_now());
    return;
  }
  std::lock_guard lock(g_outside_mu);
  if (!g_trace_on.load(std::memory_order_seq_cst)) return;
  if (g_outside.size() == g_outside_cap) {
    ++g_outside_dropped;
    return;
  }
  fill(g_outside.emplace_back(), ts_now());
}

void fill_name(Event& e, std::int64_t ts, const Fiber* f) noexcept {
  e.ts = ts;
  e.fiber = f->id;
  e.kind = Kind::name;
  std::memcpy(e.u.name, f->name, sizeof e.u.name);
  e.u.name[sizeof e.u.name - 1] = '\0';
}

std::uint64_t caller_fiber_id() noexcept {
  const Fiber* f = current_fiber();
  return f != nullptr ? f->id : 0;
}

// ---------------------------------------------------------------------------------------------
// JSON

void append_escaped(fmt::memory_buffer& out, std::string_view s) {
  for (const char c : s) {
    switch (c) {
      case '"': out.append(std::string_view("\\\"")); break;
      case '\\': out.append(std::string_view("\\\\")); break;
      case '\n': out.append(std::string_view("\\n")); break;
      case '\t': out.append(std::string_view("\\t")); break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(fmt::appender(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out.push_back(c);
        }
    }
  }
}

struct Micros {
  std::int64_t ns;
};

}  // namespace
}  // namespace spindle::detail

template <>
struct fmt::formatter<spindle::detail::Micros> : fmt::formatter<std::string_view> {
  template <class Ctx>
  auto format(spindle::detail::Micros m, Ctx& ctx) const {
    const std::int64_t ns = m.ns < 0 ? 0 : m.ns;
    return fmt::format_to(ctx.out(), "{}.{:03}", ns / 1000, ns % 1000);
  }
};

namespace spindle::detail {
namespace {

const char* end_name(TraceEnd e) noexcept {
  switch (e) {
    case TraceEnd::park: return "park";
    case TraceEnd::yield: return "yield";
    case TraceEnd::exit: return "exit";
    case TraceEnd::other: break;
  }
  return "other";
}

struct Rec {
  const Event* e;
  int tid;
};

class JsonWriter {
 public:
  explicit JsonWriter(std::FILE* f) : file_(f) {}

  // Starts the next element of "traceEvents".
  fmt::memory_buffer& item() {
    if (!first_) out_.push_back(',');
    first_ = false;
    out_.push_back('\n');
    return out_;
  }
  void flush_if_large() {
    if (out_.size() >= (1u << 20)) flush();
  }
  void raw(std::string_view s) { out_.append(s); }
  bool flush() {
    const bool ok = std::fwrite(out_.data(), 1, out_.size(), file_) == out_.size();
    out_.clear();
    ok_ = ok_ && ok;
    return ok_;
  }
  [[nodiscard]] bool ok() const noexcept { return ok_; }

 private:
  std::FILE* file_;
  fmt::memory_buffer out_;
  bool first_ = true;
  bool ok_ = true;
};

std::string label(const std::unordered_map<std::uint64_t, std::string>& names, std::uint64_t id) {
  auto it = names.find(id);
  if (it == names.end() || it->second.empty()) return fmt::format("fiber #{}", id);
  return fmt::format("{} #{}", it->second, id);
}

void write_site(fmt::memory_buffer& o, const char* file, std::uint32_t line) {
  o.append(std::string_view(",\"site\":\""));
  append_escaped(o, file != nullptr ? file : "");
  fmt::format_to(fmt::appender(o), ":{}\"", line);
}

bool write_trace(std::FILE* file, std::vector<Rec>& recs, const std::vector<int>& worker_tids,
                 bool outside_track, std::uint64_t dropped) {
  std::stable_sort(recs.begin(), recs.end(), [](const Rec& a, const Rec& b) { return a.e->ts < b.e->ts; });
  // A fiber's name: the last one recorded (set_name usually runs early in the fiber's life).
  std::unordered_map<std::uint64_t, std::string> names;
  for (const Rec& r : recs) {
    if (r.e->kind == Kind::name) names[r.e->fiber] = r.e->u.name;
  }
  JsonWriter w(file);
  w.raw(fmt::format("{{\"displayTimeUnit\":\"ns\",\"otherData\":{{\"producer\":\"spindle\","
                    "\"clock\":\"steady_clock, microseconds since trace::start\","
                    "\"dropped_events\":{}}},\n\"traceEvents\":[",
                    dropped));
  auto meta = [&](int tid, std::string_view what, std::string_view key, std::string_view value) {
    auto& o = w.item();
    fmt::format_to(fmt::appender(o), "{{\"name\":\"{}\",\"ph\":\"M\",\"pid\":1,\"tid\":{},\"args\":{{\"{}\":",
                   what, tid, key);
    o.append(value);
    o.append(std::string_view("}}"));
  };
  meta(0, "process_name", "name", "\"spindle\"");
  for (const int tid : worker_tids) {
    meta(tid, "thread_name", "name", fmt::format("\"worker {}\"", tid - 1));
    meta(tid, "thread_sort_index", "sort_index", fmt::format("{}", tid - 1));
  }
  if (outside_track) {
    meta(kOutsideTid, "thread_name", "name", "\"outside the runtime\"");
    meta(kOutsideTid, "thread_sort_index", "sort_index", "100000");
  }
  std::unordered_map<std::uint64_t, std::uint64_t> pending_flow;  // fiber -> flow id
  std::uint64_t next_flow = 1;
  auto flow_start = [&](const Rec& r, const char* name) {
    const std::uint64_t id = next_flow++;
    pending_flow[r.e->fiber] = id;
    fmt::format_to(fmt::appender(w.item()),
                   "{{\"name\":\"{}\",\"cat\":\"flow\",\"ph\":\"s\",\"id\":{},\"ts\":{},\"pid\":1,\"tid\":{}}}",
                   name, id, Micros{r.e->ts}, r.tid);
  };
  for (const Rec& r : recs) {
    const Event& e = *r.e;
    switch (e.kind) {
      case Kind::slice: {
        if (auto it = pending_flow.find(e.fiber); it != pending_flow.end()) {
          // Unbound ("bp" absent): attaches to the next slice to begin on this track, this one.
          fmt::format_to(fmt::appender(w.item()),
                         "{{\"name\":\"wake\",\"cat\":\"flow\",\"ph\":\"f\",\"id\":{},\"ts\":{},\"pid\":1,\"tid\":{}}}",
                         it->second, Micros{e.ts}, r.tid);
          pending_flow.erase(it);
        }
        auto& o = w.item();
        o.append(std::string_view("{\"name\":\""));
        append_escaped(o, label(names, e.fiber));
        fmt::format_to(fmt::appender(o),
                       "\",\"cat\":\"fiber\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":1,\"tid\":{},"
                       "\"args\":{{\"fiber\":{},\"end\":\"{}\"",
                       Micros{e.ts}, Micros{e.u.site.dur}, r.tid, e.fiber, end_name(e.end));
        if (e.end == TraceEnd::park) {
          fmt::format_to(fmt::appender(o), ",\"reason\":\"{}\"", to_string(e.reason));
          write_site(o, e.u.site.file, e.line);
          if (e.u.site.object != nullptr) fmt::format_to(fmt::appender(o), ",\"object\":\"{}\"", e.u.site.object);
        }
        o.append(std::string_view("}}"));
        break;
      }
      case Kind::spawn: {
        auto& o = w.item();
        fmt::format_to(fmt::appender(o),
                       "{{\"name\":\"spawn\",\"cat\":\"fiber\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{},\"pid\":1,"
                       "\"tid\":{},\"args\":{{\"fiber\":{},\"name\":\"",
                       Micros{e.ts}, r.tid, e.fiber);
        append_escaped(o, label(names, e.fiber));
        fmt::format_to(fmt::appender(o), "\",\"by\":{}", e.u.site.other);
        write_site(o, e.u.site.file, e.line);
        o.append(std::string_view("}}"));
        flow_start(r, "wake");
        break;
      }
      case Kind::wake: {
        auto& o = w.item();
        fmt::format_to(fmt::appender(o),
                       "{{\"name\":\"wake\",\"cat\":\"fiber\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{},\"pid\":1,"
                       "\"tid\":{},\"args\":{{\"fiber\":{},\"name\":\"",
                       Micros{e.ts}, r.tid, e.fiber);
        append_escaped(o, label(names, e.fiber));
        fmt::format_to(fmt::appender(o), "\",\"by\":{},\"reason\":\"{}\"}}}}", e.u.site.other,
                       to_string(e.reason));
        flow_start(r, "wake");
        break;
      }
      case Kind::steal:
        fmt::format_to(fmt::appender(w.item()),
                       "{{\"name\":\"steal\",\"cat\":\"sched\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{},\"pid\":1,"
                       "\"tid\":{},\"args\":{{\"from\":\"worker {}\",\"fibers\":{}}}}}",
                       Micros{e.ts}, r.tid, e.u.site.other, e.line);
        break;
      case Kind::timers:
        fmt::format_to(fmt::appender(w.item()),
                       "{{\"name\":\"timers\",\"cat\":\"sched\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":1,"
                       "\"tid\":{},\"args\":{{\"fired\":{}}}}}",
                       Micros{e.ts}, Micros{e.u.site.dur}, r.tid, e.line);
        break;
      case Kind::name:
        break;
    }
    w.flush_if_large();
  }
  w.raw("\n]}\n");
  return w.flush();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Hooks

void trace_worker_start(int worker) noexcept {
  if (Buffer* b = slot(worker)) Writer wr(b);  // marks the track as seen
}

void trace_run_begin(int worker, const Fiber* f) noexcept {
  Buffer* b = slot(worker);
  if (b == nullptr) return;
  Writer wr(b);
  if (wr.buffer() == nullptr) return;
  b->slice_start = ts_now();
  b->slice_fiber = f->id;
}

void trace_run_end(int worker, const Fiber* f, TraceEnd how) noexcept {
  Buffer* b = slot(worker);
  if (b == nullptr) return;
  Writer wr(b);
  if (wr.buffer() == nullptr) return;
  const std::int64_t now = ts_now();
  // A run already in progress when the trace started is shown from the start.
  const std::int64_t begin = b->slice_fiber == f->id ? b->slice_start : 0;
  b->slice_fiber = 0;
  Event* e = wr.next();
  if (e == nullptr) return;
  e->ts = begin;
  e->fiber = f->id;
  e->kind = Kind::slice;
  e->end = how;
  e->reason = WaitReason::none;
  e->line = 0;
  e->u.site = Site{now - begin, 0, nullptr, nullptr};
  if (how == TraceEnd::park) {
    // The fiber is suspended and nobody can have readied it yet (the primitive's lock is
    // released after this hook): its wait fields describe this park.
    e->reason = f->wait_reason.load(std::memory_order_relaxed);
    const std::source_location at = f->wait_site.load(std::memory_order_relaxed);
    e->u.site.file = at.file_name();
    e->line = at.line();
    e->u.site.object = f->wait_object.load(std::memory_order_relaxed);
  }
}

void trace_spawn(const Fiber* f) noexcept {
  const std::uint64_t by = caller_fiber_id();
  record_here([f, by](Event& e, std::int64_t ts) {
    e.ts = ts;
    e.fiber = f->id;
    e.kind = Kind::spawn;
    e.reason = WaitReason::none;
    e.line = f->spawn_site.line();
    e.u.site = Site{0, by, f->spawn_site.file_name(), nullptr};
  });
  if (f->name[0] != '\0') record_here([f](Event& e, std::int64_t ts) { fill_name(e, ts, f); });
}

void trace_wake(const Fiber* f) noexcept {
  const std::uint64_t by = caller_fiber_id();
  const WaitReason why = f->wait_reason.load(std::memory_order_relaxed);
  record_here([f, by, why](Event& e, std::int64_t ts) {
    e.ts = ts;
    e.fiber = f->id;
    e.kind = Kind::wake;
    e.reason = why;
    e.line = 0;
    e.u.site = Site{0, by, nullptr, nullptr};
  });
}

void trace_rename(const Fiber* f) noexcept {
  record_here([f](Event& e, std::int64_t ts) { fill_name(e, ts, f); });
}

void trace_steal(int thief, int victim, std::uint32_t n) noexcept {
  Buffer* b = slot(thief);
  if (b == nullptr) return;
  Writer wr(b);
  if (wr.buffer() == nullptr) return;
  if (Event* e = wr.next()) {
    e->ts = ts_now();
    e->fiber = 0;
    e->kind = Kind::steal;
    e->line = n;
    e->u.site = Site{0, static_cast<std::uint64_t>(victim), nullptr, nullptr};
  }
}

std::int64_t trace_clock() noexcept { return ts_now(); }

void trace_timers(int worker, std::int64_t begin, std::size_t fired) noexcept {
  Buffer* b = slot(worker);
  if (b == nullptr) return;
  Writer wr(b);
  if (wr.buffer() == nullptr) return;
  if (Event* e = wr.next()) {
    e->ts = begin;
    e->fiber = 0;
    e->kind = Kind::timers;
    e->line = static_cast<std::uint32_t>(fired);
    e->u.site = Site{ts_now() - begin, 0, nullptr, nullptr};
  }
}

}  // namespace spindle::detail

// ---------------------------------------------------------------------------------------------
// Public API

namespace spindle::trace {

using namespace spindle::detail;

void start(const std::string& path, const Options& opts) {
  std::lock_guard session(g_session_mu);
  if (g_file != nullptr) throw RuntimeError("spindle::trace::start: a trace is already recording");
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    throw RuntimeError(fmt::format("spindle::trace::start: cannot open {}: {}", path, std::strerror(errno)));
  }
  g_file = f;
  g_path = path;
  {
    std::lock_guard lock(g_alloc_mu);
    g_cap = std::max<std::size_t>(opts.events_per_worker, 1);
    for (auto& s : g_slots) {
      Buffer* b = s.load(std::memory_order_acquire);
      if (b == nullptr) continue;
      wait_idle(b);  // a writer may be between its two handshake steps (it will leave)
      b->events = new Event[g_cap];
      b->cap = g_cap;
      b->count = 0;
      b->dropped = 0;
      b->slice_fiber = 0;
      b->seen = false;
    }
  }
  {
    std::lock_guard lock(g_outside_mu);
    g_outside.clear();
    g_outside.shrink_to_fit();
    g_outside_cap = std::max<std::size_t>(opts.events_outside, 16);
    g_outside.reserve(g_outside_cap);
    g_outside_dropped = 0;
  }
  g_origin.store(steady_ns(), std::memory_order_relaxed);
  // A runtime already running: give each of its workers a track, and name the fibers alive now
  // (their spawn events are not in this trace).
  if (Scheduler* s = current_scheduler()) {
    for (std::size_t i = 0; i < s->workers_.size() && i < kMaxWorkers; ++i) {
      slot(static_cast<int>(i))->seen = true;  // no writer yet: g_trace_on is still false
    }
    s->registry_.for_each_live([](Fiber* fb) {
      std::lock_guard lock(g_outside_mu);
      if (fb->name[0] == '\0' || g_outside.size() == g_outside_cap) return;
      fill_name(g_outside.emplace_back(), 0, fb);
    });
  }
  g_trace_on.store(true, std::memory_order_seq_cst);
}

Summary stop() {
  std::lock_guard session(g_session_mu);
  if (g_file == nullptr) throw RuntimeError("spindle::trace::stop: no trace is recording");
  g_trace_on.store(false, std::memory_order_seq_cst);
  std::vector<std::unique_ptr<Event[]>> arrays;
  std::vector<Rec> recs;
  std::vector<int> tids;
  std::uint64_t dropped = 0;
  {
    std::lock_guard lock(g_alloc_mu);
    for (int i = 0; i < kMaxWorkers; ++i) {
      Buffer* b = g_slots[i].load(std::memory_order_acquire);
      if (b == nullptr) continue;
      wait_idle(b);  // after this, the worker never touches b->events again
      arrays.emplace_back(b->events);
      for (std::size_t k = 0; k < b->count; ++k) recs.push_back({&b->events[k], i + 1});
      if (b->seen || b->count > 0) tids.push_back(i + 1);
      dropped += b->dropped;
      b->events = nullptr;
      b->cap = b->count = 0;
    }
    g_cap = 0;
  }
  std::vector<Event> outside;
  {
    std::lock_guard lock(g_outside_mu);
    outside.swap(g_outside);
    dropped += g_outside_dropped;
    g_outside_cap = 0;
  }
  bool outside_track = false;
  for (const Event& e : outside) {
    recs.push_back({&e, kOutsideTid});
    outside_track = outside_track || e.kind != Kind::name;
  }
  Summary sum{g_path, recs.size(), dropped};
  std::FILE* f = g_file;
  g_file = nullptr;
  const bool ok = write_trace(f, recs, tids, outside_track, dropped);
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) throw RuntimeError(fmt::format("spindle::trace::stop: writing {} failed", sum.path));
  return sum;
}

bool recording() noexcept { return g_trace_on.load(std::memory_order_relaxed); }

}  // namespace spindle::trace
