// run(): wires the stages into a patterns::Pipeline, applies the error policies, drives the
// progress display, and settles the open batch at the end (see run.hpp).
#include "run.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include <spindle/chan.hpp>
#include <spindle/http/client.hpp>
#include <spindle/mutex.hpp>
#include <spindle/net/blocking.hpp>
#include <spindle/net/signal.hpp>
#include <spindle/patterns/pipeline.hpp>
#include <spindle/patterns/retry.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

#include "errors.hpp"
#include "origin.hpp"
#include "stages.hpp"
#include "store.hpp"

namespace pipeline {
namespace {

namespace patterns = spindle::patterns;
using spindle::Context;

constexpr std::size_t kReadChunk = 256;  // entries per blocking read of a URL list or directory

// What patterns::Pipeline does not count for a stage: retries, and the first error (as text).
struct StageState {
  StagePolicy policy;
  std::atomic<std::uint64_t> retries{0};
  // Items whose attempt ended because the pipeline was cancelled: patterns::Pipeline counts
  // them as errors (a function must return something), the report does not.
  std::atomic<std::uint64_t> cancelled{0};
  mutable spindle::Mutex mu;
  std::string first_error;

  void note(std::string text) {
    std::lock_guard lock(mu);
    if (first_error.empty()) first_error = std::move(text);
  }
  std::string first() const {
    std::lock_guard lock(mu);
    return first_error;
  }
};

std::error_code error_of(const std::error_code& ec) { return ec; }
template <class T>
std::error_code error_of(const Result<T>& r) {
  return r.error();
}

patterns::ErrorPolicy pipeline_policy(OnError p) {
  // retry gives up after its attempts and then drops the item, as skip does.
  return p == OnError::abort ? patterns::ErrorPolicy::fail : patterns::ErrorPolicy::skip;
}

// The state of one run shared by the stage functions (which outlive nothing: the pipeline is
// joined before a Run is destroyed).
class Run {
 public:
  Run(const Config& cfg, Store& store, spindle::http::Client& client)
      : cfg_(cfg), store_(store), client_(client) {
    for (std::size_t i = 0; i < kStages; ++i) stages_[i].policy = cfg.stages[i];
  }

  // One item through a stage's policy: f(ctx, attempt) does one attempt (after the injected
  // failure draw); with the retry policy patterns::retry calls it again after a backoff.
  // A failure that is not the pipeline's own cancellation is noted.
  template <class F>
  auto attempt(const Context& ctx, StageId id, std::uint64_t index, std::string_view source, F&& f) {
    StageState& st = stages_[static_cast<std::size_t>(id)];
    using Out = std::invoke_result_t<F&, const Context&, int>;
    Out out = [&]() -> Out {
      if (st.policy.on_error != OnError::retry) return f(ctx, 1);
      int n = 0;
      return patterns::retry(ctx, retry_settings(st), [&](const Context& c) -> Out { return f(c, ++n); });
    }();
    const std::error_code ec = error_of(out);
    if (ec && ctx.err()) st.cancelled.fetch_add(1, std::memory_order_relaxed);
    if (ec && !ctx.err()) {
      std::string text = fmt::format("{}: doc {} ({}): {}", kStageNames[static_cast<std::size_t>(id)], index,
                                     source, ec.message());
      if (st.policy.on_error == OnError::abort) {
        std::lock_guard lock(abort_mu_);
        if (abort_detail_.empty()) abort_detail_ = text;
      }
      st.note(std::move(text));
    }
    return out;
  }

  [[nodiscard]] bool inject(StageId id, std::uint64_t index, int attempt) const noexcept {
    return injected_failure(cfg_.corpus.seed, id, index, attempt, cfg_.stages[static_cast<std::size_t>(id)].fail_rate);
  }

  Result<Fetched> fetch(const Context& ctx, const Work& w) {
    return attempt(ctx, StageId::fetch, w.index, w.location, [&](const Context& c, int n) -> Result<Fetched> {
      if (inject(StageId::fetch, w.index, n)) return errc::injected;
      if (w.is_file) {
        auto r = spindle::blocking(c, [path = w.location] { return read_file(path); });
        if (!r.ok()) return r.err;
        if (!r.value->ok()) return r.value->error();
        return Fetched{w.index, w.location, std::move(**r.value)};
      }
      auto [resp, err] = client_.get(c, w.location);
      if (err) return err;
      if (resp.status >= 500) return errc::http_unavailable;
      if (resp.status != 200) return errc::http_status;
      return Fetched{w.index, w.location, std::move(resp.body)};
    });
  }

  Result<Doc> parse(const Context& ctx, const Fetched& f) {
    return attempt(ctx, StageId::parse, f.index, f.source, [&](const Context&, int n) -> Result<Doc> {
      if (inject(StageId::parse, f.index, n)) return errc::injected;
      return parse_document(f.index, f.source, f.body);
    });
  }

  Result<Counted> transform(const Context& ctx, Doc d) {
    const std::uint64_t index = d.index;
    const std::string source = d.source;
    return attempt(ctx, StageId::transform, index, source, [&](const Context&, int n) -> Result<Counted> {
      if (inject(StageId::transform, index, n)) return errc::injected;
      return count_words(std::move(d));  // cannot fail: moved from once, on the last attempt
    });
  }

  // The store's sink: the item joins the open batch; a full batch is committed.
  std::error_code store(const Context& ctx, Counted c) {
    const std::error_code ec = attempt(ctx, StageId::store, c.index, c.source, [&](const Context&, int n) {
      return inject(StageId::store, c.index, n) ? std::error_code(errc::injected) : std::error_code();
    });
    if (ec) return ec;
    store_.add(std::move(c));
    if (store_.pending() >= cfg_.batch) {
      std::string message;
      const std::error_code cec = commit(ctx, &message);
      // Rows that cannot be written cannot be skipped: fail the run, whatever the policy.
      if (cec && !ctx.err()) throw DatabaseError(message);
    }
    return {};
  }

  // Commits the open batch (retrying it under the store's retry policy); on_commit after.
  std::error_code commit(const Context& ctx, std::string* message) {
    if (store_.pending() == 0) return {};
    StageState& st = stages_[static_cast<std::size_t>(StageId::store)];
    const std::error_code ec = st.policy.on_error == OnError::retry
                                   ? patterns::retry(ctx, retry_settings(st), [&] { return store_.commit(message); })
                                   : store_.commit(message);
    if (!ec && cfg_.on_commit) cfg_.on_commit(store_.totals());
    return ec;
  }

  [[nodiscard]] std::vector<StageReport> reports(const patterns::Pipeline& p) const {
    std::vector<StageReport> out;
    for (const patterns::StageMetrics& m : p.metrics()) {
      StageReport r;
      r.name = m.name;
      r.workers = m.workers;
      r.in = m.in;
      r.out = m.out;
      r.errors = m.errors;
      r.skipped = m.skipped;
      r.queue_depth = m.queue_depth;
      r.queue_capacity = m.queue_capacity;
      r.latency = m.latency;
      if (auto id = parse_stage(m.name)) {
        const StageState& st = stages_[static_cast<std::size_t>(*id)];
        r.policy = std::string(to_string(st.policy.on_error));
        r.retries = st.retries.load(std::memory_order_relaxed);
        // Saturating: mid-run, the count here may run ahead of the Pipeline's.
        const std::uint64_t c = st.cancelled.load(std::memory_order_relaxed);
        r.errors -= std::min(c, r.errors);
        if (st.policy.on_error != OnError::abort) r.skipped -= std::min(c, r.skipped);
        r.first_error = st.first();
      }
      out.push_back(std::move(r));
    }
    return out;
  }

  [[nodiscard]] std::string abort_detail() const {
    std::lock_guard lock(abort_mu_);
    return abort_detail_;
  }

 private:
  patterns::RetrySettings retry_settings(StageState& st) const {
    patterns::RetrySettings s;
    s.max_attempts = cfg_.attempts;
    s.backoff.initial = cfg_.backoff;
    s.backoff.max = cfg_.backoff_max;
    // The same bytes will not parse next time; a 404 or a malformed URL will stay one.
    s.retryable = [](std::error_code ec) {
      return ec != errc::bad_document && ec != errc::http_status && ec != spindle::http::errc::bad_url &&
             ec != spindle::http::errc::unsupported_scheme && ec != spindle::errc::canceled;
    };
    s.on_retry = [&st](int, std::error_code, spindle::Duration) { st.retries.fetch_add(1, std::memory_order_relaxed); };
    return s;
  }

  const Config& cfg_;
  Store& store_;
  spindle::http::Client& client_;
  std::array<StageState, kStages> stages_;
  mutable spindle::Mutex abort_mu_;
  std::string abort_detail_;
};

Report failed(Report r, std::error_code ec, std::string detail) {
  r.outcome = Outcome::failed;
  r.error = ec;
  r.error_detail = std::move(detail);
  return r;
}

}  // namespace

std::string default_db_path() {
  const char* tmp = std::getenv("TMPDIR");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/spindle-pipeline.db";
}

Report run(const Config& cfg, const Context& ctx, const Context& stop) {
  const spindle::TimePoint start = spindle::Clock::now();
  Report rep;
  rep.db_path = cfg.db_path;

  // The input: the generated corpus behind the origin, a URL list, or a directory.
  std::optional<Corpus> corpus;
  std::optional<Origin> origin;
  std::unique_ptr<UrlListReader> urls;
  std::unique_ptr<DirReader> dir;
  if (!cfg.urls_file.empty()) {
    urls = spindle::blocking([&] { return std::make_unique<UrlListReader>(cfg.urls_file); });
    if (urls->error()) return failed(std::move(rep), urls->error(), "cannot read the URL list " + cfg.urls_file);
    rep.input = "URL list " + cfg.urls_file;
  } else if (!cfg.dir.empty()) {
    dir = spindle::blocking([&] { return std::make_unique<DirReader>(cfg.dir); });
    if (dir->error()) return failed(std::move(rep), dir->error(), "cannot read the directory " + cfg.dir);
    rep.input = "directory " + cfg.dir;
  } else {
    corpus.emplace(cfg.corpus);
    origin.emplace(*corpus);
    if (std::error_code ec = origin->start()) return failed(std::move(rep), ec, "cannot start the origin server");
    rep.expected = cfg.corpus.docs;
    rep.input = fmt::format("{} (generated: {} docs x {} words, vocabulary {})", origin->base_url(),
                            with_commas(cfg.corpus.docs), cfg.corpus.words_per_doc, cfg.corpus.vocabulary);
  }

  std::optional<Store> store;
  std::string store_error;
  try {
    store.emplace(cfg.db_path);
  } catch (const DatabaseError& e) {
    store_error = e.what();  // reported below: nothing may park inside a catch block
  }
  if (!store) {
    if (origin) origin->stop(std::chrono::seconds(1));
    return failed(std::move(rep), errc::database, store_error);
  }

  spindle::http::ClientOptions copts;
  copts.timeout = cfg.fetch_timeout;
  copts.max_retries = 0;  // the fetch stage's policy decides about retries
  copts.max_idle_per_host = std::max<std::size_t>(cfg.fetchers, 1);
  spindle::http::Client client(copts);
  Run run(cfg, *store, client);
  Progress progress(cfg.progress, cfg.out);

  std::error_code ec;
  std::string db_failure;
  {
    patterns::Pipeline p(ctx);
    auto works = p.source<Work>("source", [&](const Context&, patterns::Emit<Work>& emit) -> std::error_code {
      if (origin) {
        for (std::uint64_t i = 0; i < cfg.corpus.docs && !stop.err(); ++i) {
          if (!emit(Work{i, origin->url(i), false})) return {};
        }
        return {};
      }
      for (bool more = true; more && !stop.err();) {
        std::vector<Work> chunk;
        chunk.reserve(kReadChunk);
        more = spindle::blocking([&] { return urls ? urls->next(chunk, kReadChunk) : dir->next(chunk, kReadChunk); });
        if (dir && dir->error()) return dir->error();
        for (Work& w : chunk) {
          if (stop.err() || !emit(std::move(w))) return {};
        }
      }
      return {};
    }, cfg.buffer);
    auto opts = [&](std::size_t workers, StageId id) {
      return patterns::StageOptions{.workers = workers, .buffer = cfg.buffer,
                                    .on_error = pipeline_policy(cfg.stages[static_cast<std::size_t>(id)].on_error)};
    };
    auto fetched = p.stage("fetch", works, opts(cfg.fetchers, StageId::fetch),
                           [&](const Context& c, Work w) { return run.fetch(c, w); });
    auto parsed = p.stage("parse", fetched, opts(cfg.parsers, StageId::parse),
                          [&](const Context& c, Fetched f) { return run.parse(c, f); });
    auto counted = p.stage("transform", parsed, opts(cfg.transformers, StageId::transform),
                           [&](const Context& c, Doc d) { return run.transform(c, std::move(d)); });
    p.sink("store", counted, opts(1, StageId::store),
           [&](const Context& c, Counted item) { return run.store(c, std::move(item)); });

    auto snapshot = [&](std::string state) {
      if (state.empty()) {
        if (ctx.err()) {
          state = "stopping: dropping the items in flight";
        } else if (stop.err()) {
          state = "stopping: draining the items in flight (Ctrl-C again drops them)";
        } else if (p.context().err()) {
          state = "aborting: " + run.abort_detail();
        }
      }
      return Snapshot{run.reports(p), store->totals(), rep.expected, spindle::Clock::now() - start, std::move(state)};
    };

    spindle::Chan<char> display_done(0);
    spindle::WaitGroup display;
    if (progress.mode() != ProgressMode::off) {
      display.go([&] {
        while (display_done.recv_for(progress.period()).status == spindle::ChanStatus::timeout) {
          progress.draw(snapshot(""));
        }
      });
    }
    try {
      ec = p.wait();
    } catch (const DatabaseError& e) {
      db_failure = e.what();  // handled below: nothing may park inside a catch block
    }
    display_done.close();
    display.wait();
    rep.stages = run.reports(p);
  }

  // Settle the open batch: committed unless the run aborted (then the database keeps exactly
  // the batches committed before the failure).
  if (!db_failure.empty()) {
    rep.outcome = Outcome::aborted;
    rep.error = errc::database;
    rep.error_detail = "store: " + db_failure;
  } else if (ec && ec != spindle::errc::canceled) {
    rep.outcome = Outcome::aborted;
    rep.error = ec;
    rep.error_detail = run.abort_detail();
    if (rep.error_detail.empty()) rep.error_detail = "source: " + ec.message();
  } else {
    rep.outcome = (ec || ctx.err() || stop.err()) ? Outcome::interrupted : Outcome::completed;
  }
  if (rep.outcome == Outcome::aborted) {
    rep.rolled_back_docs = store->pending();
    rep.rolled_back = rep.rolled_back_docs > 0;
    store->discard();
  } else {
    std::string message;
    if (std::error_code cec = run.commit(spindle::background(), &message)) {
      rep.outcome = Outcome::aborted;
      rep.error = cec;
      rep.error_detail = "store: " + message;
      rep.rolled_back_docs = store->pending();
      rep.rolled_back = true;
      store->discard();
    }
  }

  client.close_idle_connections();
  if (origin) origin->stop(std::chrono::seconds(2));
  rep.stored = store->totals();
  rep.distinct_words = store->word_rows();
  store.reset();
  rep.elapsed = spindle::Clock::now() - start;
  if (progress.mode() != ProgressMode::off) {
    progress.finish(Snapshot{rep.stages, rep.stored, rep.expected, rep.elapsed, to_string(rep.outcome)});
  }
  return rep;
}

Report run_interruptible(const Config& cfg) {
  spindle::Receiver<int> signals = spindle::signal::notify({SIGINT, SIGTERM}, 2);
  auto hard = spindle::with_cancel(spindle::background());
  auto drain = spindle::with_cancel(spindle::background());
  spindle::Chan<char> finished(0);
  spindle::WaitGroup wg;
  wg.go([&] {
    for (int received = 0; received < 2;) {
      spindle::Select<2> sel;
      std::optional<int> sig;
      const int on_signal = sel.recv(signals, &sig);
      (void)sel.recv(finished);
      if (sel.wait() != on_signal) return;
      // The first signal stops the source and lets what is in flight drain; the second drops it.
      (++received == 1 ? drain.cancel : hard.cancel)();
    }
  });
  Report r = run(cfg, hard.ctx, drain.ctx);
  finished.close();
  wg.wait();
  spindle::signal::stop(signals);
  return r;
}

}  // namespace pipeline
