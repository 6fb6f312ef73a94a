// prime_sieve: Go's concurrent prime sieve (from the Go tour and the Go spec's examples), with
// spindle. A generator fiber feeds 2, 3, 4, ... into a chain of filter fibers; each prime found
// adds one more filter. Every number crosses up to N unbuffered channels: a stress of fiber
// hand-offs. Usage: prime_sieve [N] (default 2000 primes). Prints the last prime and timings.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include <fmt/format.h>

#include <spindle/chan.hpp>
#include <spindle/context.hpp>
#include <spindle/runtime.hpp>
#include <spindle/select.hpp>
#include <spindle/waitgroup.hpp>

namespace {

using spindle::Chan;

// Sends 2, 3, 4, ... until the context is cancelled. Go:
//   for i := 2; ; i++ { select { case out <- i: case <-ctx.Done(): return } }
void generate(spindle::Context ctx, Chan<int> out) {
  for (int i = 2;; ++i) {
    const std::size_t chosen = spindle::select(spindle::case_send(out, i), spindle::case_recv(ctx.done()));
    if (chosen == 1) return;
  }
}

// Copies the values from `in` to `out`, dropping multiples of `prime`, until cancelled.
void filter(spindle::Context ctx, Chan<int> in, Chan<int> out, int prime) {
  for (;;) {
    std::optional<int> v;
    if (spindle::select(spindle::case_recv(in, [&](std::optional<int> x) { v = x; }),
                        spindle::case_recv(ctx.done())) == 1) {
      return;
    }
    if (*v % prime == 0) continue;
    if (spindle::select(spindle::case_send(out, *v), spindle::case_recv(ctx.done())) == 1) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 2000;
  const auto start = std::chrono::steady_clock::now();
  const int last = spindle::run([n] {
    auto [ctx, cancel] = spindle::with_cancel(spindle::background());
    spindle::WaitGroup wg;
    Chan<int> ch(0);
    wg.go([ctx = ctx, ch] { generate(ctx, ch); });
    int prime = 0;
    for (int i = 0; i < n; ++i) {
      prime = *ch.recv();
      if (i < 10 || i % (n / 10 == 0 ? 1 : n / 10) == 0) fmt::print("prime #{}: {}\n", i + 1, prime);
      Chan<int> next(0);
      wg.go([ctx = ctx, ch, next, prime] { filter(ctx, ch, next, prime); });
      ch = next;
    }
    cancel();   // every fiber in the chain sees the context and returns
    wg.wait();  // join them all: nothing is left running
    return prime;
  });
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  fmt::print("the {}th prime is {} ({} fibers, {:.0f} ms on {} workers)\n", n, last, n + 1, ms,
             std::getenv("SPINDLE_WORKERS") ? std::getenv("SPINDLE_WORKERS") : "all");
  return 0;
}
