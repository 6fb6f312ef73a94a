#!/usr/bin/env bash
# Installs what spindle needs on Debian 12, idempotently: a package already present is skipped.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh --bench  also the benchmark peers (Go 1.19, Boost.Fiber) and gnuplot
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost-context1.81-dev libboost1.81-dev libfmt-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libsqlite3-dev libssl-dev
  clang libclang-rt-14-dev
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(golang-go golang-golang-x-sync-dev golang-golang-x-time-dev
             libboost-fiber1.81-dev gnuplot-nox wrk)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: everything is already installed"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
