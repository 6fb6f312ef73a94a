#include "support/fiber_test.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <spindle/debug.hpp>
#include <spindle/testing/leak_check.hpp>
#include <spindle/this_fiber.hpp>

#include "support/polling.hpp"

namespace spindle::testing {
namespace {

int hang_limit_seconds() {
  if (const char* s = std::getenv("SPINDLE_TEST_TIMEOUT_S")) return std::atoi(s);
  return 120;
}

// Aborts the process if the guarded scope outlives the limit.
class HangGuard {
 public:
  explicit HangGuard(std::string what) : what_(std::move(what)) {
    thread_ = std::thread([this] {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, std::chrono::seconds(hang_limit_seconds()), [this] { return done_; })) {
        std::fprintf(stderr, "\nspindle test: %s did not finish within %d s: aborting\n%s",
                     what_.c_str(), hang_limit_seconds(), fiber_dump().c_str());
        std::fflush(stderr);
        std::abort();
      }
    });
  }
  ~HangGuard() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::string what_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace

std::int64_t other_live_fibers() { return num_fibers() - 1; }

bool wait_other_fibers_at_most(std::int64_t n, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (other_live_fibers() > n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    this_fiber::yield();
  }
  return true;
}

int fibers_parked_on(std::string_view reason) {
  const std::string dump = fiber_dump();
  const std::string needle = "[" + std::string(reason) + ",";
  int n = 0;
  for (auto at = dump.find(needle); at != std::string::npos; at = dump.find(needle, at + 1)) ++n;
  return n;
}

bool wait_parked_on(std::string_view reason, int n, std::chrono::milliseconds limit) {
  return eventually([&] { return fibers_parked_on(reason) == n; }, limit);
}

void run_in_fiber(int workers, const std::function<void()>& body, bool force_migration) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  HangGuard guard(std::string(info->test_suite_name()) + "." + info->name());
  Options opts;
  opts.workers = workers;
  opts.force_migration = force_migration || std::getenv("SPINDLE_FORCE_MIGRATION") != nullptr;
  spindle::run(opts, [&] {
    body();
    // Fibers that were joined may still be on their way out: give them a bounded moment.
    spindle::testing::expect_no_leaked_fibers();
  });
}

// Every test binary of the suite runs with the leak listener: a plain TEST that calls
// spindle::run() and leaves fibers behind fails too.
const bool kLeakCheckInstalled = [] {
  install_leak_check();
  return true;
}();

std::string worker_param_name(const ::testing::TestParamInfo<int>& info) {
  return "workers" + std::to_string(info.param);
}

}  // namespace spindle::testing
