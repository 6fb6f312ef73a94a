#!/usr/bin/env bash
# Builds spindle and runs the whole test suite.
#
#   scripts/test.sh          release build (RelWithDebInfo) and every test
#   scripts/test.sh --ci     also: ASan+UBSan (detect_stack_use_after_return=1; per test, then
#                            each suite whole in one process), TSan, a
#                            forced-migration run, and a smoke run of every benchmark
#
# Installs missing Debian packages first (scripts/install-deps.sh). Build trees go to build/.
set -euo pipefail
cd "$(dirname "$0")/.."

ci=0
[[ "${1:-}" == "--ci" ]] && ci=1
jobs=$(nproc)
export SPINDLE_TEST_TIMEOUT_S=${SPINDLE_TEST_TIMEOUT_S:-300}

bash scripts/install-deps.sh

configure_and_build() {  # name, cmake args...
  local name=$1; shift
  echo "::: build $name"
  cmake -S . -B "build/$name" -G Ninja "$@" >/dev/null
  cmake --build "build/$name" -j "$jobs"
}
run_tests() {  # name, extra ctest args...
  local name=$1; shift
  echo "::: test $name"
  ctest --test-dir "build/$name" --output-on-failure -j "$jobs" --timeout 900 "$@"
}

started=$(date +%s)
configure_and_build release -DCMAKE_BUILD_TYPE=RelWithDebInfo
run_tests release

if ((ci)); then
  echo "::: forced migration (every woken fiber resumes on another worker)"
  # The suites whose code parks and wakes directly (the rest is built on them).
  for suite in runtime sync chan context; do
    SPINDLE_FORCE_MIGRATION=1 "build/release/tests/${suite}_tests" --gtest_brief=1
  done

  if [[ -x build/release/bench/spindle_bench ]]; then
    echo "::: bench smoke (one tiny iteration each, no timing assertions)"
    build/release/bench/spindle_bench --benchmark_min_time=0.001 --benchmark_repetitions=1 >/dev/null
    for p in build/release/bench/skynet build/release/bench/parked_fibers; do
      [[ -x $p ]] && "$p" --small
    done
  fi

  # Sanitizer builds: -O1 with line tables only (full debug info doubles their build time).
  # The samples' tests too: they drive the network stack (HTTP over the netpoller, the blocking
  # pool for SQLite) as real programs do.
  configure_and_build asan -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" -DSPINDLE_SANITIZE=address \
    -DSPINDLE_BUILD_BENCH=OFF -DSPINDLE_BUILD_SAMPLES=ON
  export ASAN_OPTIONS=detect_stack_use_after_return=1:detect_leaks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  run_tests asan
  # ctest runs one test per process; what outlives a runtime (ASan's shadow of unmapped stacks,
  # thread-locals) shows only when one process runs many runtimes, so each suite runs whole too.
  echo "::: asan, each suite in one process"
  for suite in runtime sync chan context diag patterns net; do
    "build/asan/tests/${suite}_tests" --gtest_brief=1
  done
  unset ASAN_OPTIONS UBSAN_OPTIONS

  configure_and_build tsan -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="-O1 -g1" -DSPINDLE_SANITIZE=thread \
    -DSPINDLE_BUILD_BENCH=OFF -DSPINDLE_BUILD_SAMPLES=ON
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 run_tests tsan
fi
echo "::: all test runs passed in $(( $(date +%s) - started )) s"
