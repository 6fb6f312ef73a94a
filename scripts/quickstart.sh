#!/usr/bin/env bash
# The README's first command: installs what spindle needs (apt), builds it, and runs the
# flagship sample, samples/pipeline: fetch -> parse -> transform -> store on its defaults (a
# generated corpus of 10,000 JSON documents served and fetched over HTTP on 127.0.0.1, word
# counts stored in SQLite), with a live progress display and a per-stage summary at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release -j "$(nproc)" --target pipeline
echo "::: running samples/pipeline (fetch -> parse -> transform -> store; Ctrl-C stops it cleanly)"
build/release/samples/pipeline
