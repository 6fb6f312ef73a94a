#!/usr/bin/env bash
# The README's first command: installs what spindle needs (apt), builds it, and runs the
# flagship sample.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target prime_sieve
echo "::: running samples/prime_sieve (Go's concurrent prime sieve: a chain of 2001 fibers)"
build/release/samples/prime_sieve 2000
