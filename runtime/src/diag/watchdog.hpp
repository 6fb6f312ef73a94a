// Watchdog: Go's sysmon, in miniature. A thread per runtime that wakes every period/4 and
// reports (once per stall) a worker whose current fiber has run longer than the threshold
// without parking or yielding: a CPU-bound loop or a blocking system call on a worker. The other
// workers keep running that worker's queued fibers (they steal them) and its timers (the timer
// heap is shared). The watchdog also prints the fiber dump when SIGQUIT arrives, if enabled.
//
// It only observes: fibers are cooperative and nothing can preempt one (see the README).
#pragma once

#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace spindle::detail {

class Scheduler;

class Watchdog {
 public:
  explicit Watchdog(Scheduler& s);
  ~Watchdog();  // stops and joins the thread
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void loop();
  void check_workers();

  Scheduler& sched_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  struct Seen {
    std::uint64_t switches = 0;
    const void* fiber = nullptr;
    std::chrono::steady_clock::time_point since{};
    bool reported = false;
  };
  std::vector<Seen> seen_;
  std::thread thread_;
};

// After run(): remember the fibers run() abandoned, for leak checks (spindle/debug.hpp).
void record_abandoned(Scheduler& s);

}  // namespace spindle::detail
