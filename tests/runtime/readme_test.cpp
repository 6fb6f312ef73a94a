// The README's first example, compiled and run as written (through the umbrella header, which
// this also checks compiles on its own).
#include <gtest/gtest.h>

#include <spindle/spindle.hpp>

namespace {

int readme_main() {
  return spindle::run([] {
    spindle::Chan<int> results(3);  // buffered: the senders need no receiver yet
    spindle::WaitGroup wg;
    for (int i = 0; i < 3; ++i) wg.go([=] { results.send(i * i); });
    wg.wait();
    results.close();
    int sum = 0;
    for (int v : results) sum += v;  // ends when the channel is closed and drained
    return sum == 5 ? 0 : 1;
  });
}

TEST(Readme, FirstExampleRuns) { EXPECT_EQ(readme_main(), 0); }

}  // namespace
