// skynet: 1,000,000 leaf fibers in a 10-ary tree (1,111,111 fibers in all). Each leaf sends its
// number to its parent over an unbuffered channel; each node sends the sum of its ten children.
// The sum must be 499999500000.   usage: skynet [--small] [--workers N] [--runs R]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include <spindle/chan.hpp>
#include <spindle/runtime.hpp>

namespace {

void node(spindle::Chan<long long> out, long long num, long long size) {
  if (size == 1) {
    out.send(num);
    return;
  }
  spindle::Chan<long long> children(0);
  const long long step = size / 10;
  for (int i = 0; i < 10; ++i) {
    spindle::go([children, num, step, i] { node(children, num + i * step, step); });
  }
  long long sum = 0;
  for (int i = 0; i < 10; ++i) sum += *children.recv();
  out.send(sum);
}

}  // namespace

int main(int argc, char** argv) {
  long long leaves = 1'000'000;
  int workers = 0, runs = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--small") == 0) leaves = 10'000, runs = 1;
    else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) workers = std::atoi(argv[++i]);
    else if (std::strcmp(argv[i], "--runs") == 0 && i + 1 < argc) runs = std::atoi(argv[++i]);
  }
  std::vector<double> times;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const long long sum = spindle::run(spindle::Options{.workers = workers}, [leaves] {
      spindle::Chan<long long> result(0);
      spindle::go([result, leaves] { node(result, 0, leaves); });
      return *result.recv();
    });
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (sum != leaves * (leaves - 1) / 2) {
      std::fprintf(stderr, "skynet: wrong sum %lld\n", sum);
      return 1;
    }
    times.push_back(ms);
  }
  std::sort(times.begin(), times.end());
  std::printf("skynet: %lld leaves, sum %lld, median %.1f ms of %d runs (min %.1f, max %.1f)\n", leaves,
              leaves * (leaves - 1) / 2, times[times.size() / 2], runs, times.front(), times.back());
  return 0;
}
