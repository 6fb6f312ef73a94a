#!/usr/bin/env bash
# One load run of the gateway under wrk (see README.md, "Load run"). Usage:
#   samples/gateway/loadrun.sh BUILD_DIR [RATE BURST KEYS QUOTA_PER_THREAD WRK_DURATION]
# Starts `gateway --demo` on 127.0.0.1:18090, records its descriptors (/proc/<pid>/fd) and
# fibers (/metrics) at rest, runs wrk (2 threads, 50 connections, load.lua: KEYS API keys,
# exactly QUOTA requests per thread) against /api/fast/item, then compares wrk's counts with the
# gateway's /metrics and log, checks the limit against what the buckets could grant over the
# span of the run, drops pooled upstream connections (POST /admin/close-idle) and checks that
# descriptors and fibers are back to their resting values, and stops the gateway with SIGTERM.
set -euo pipefail
BUILD=${1:?build dir}; RATE=${2:-1000}; BURST=${3:-100}; KEYS=${4:-8}; QUOTA=${5:-100000}; DURATION=${6:-40s}
HERE=$(cd "$(dirname "$0")" && pwd)
PORT=18090; URL=http://127.0.0.1:$PORT
LOG=$(mktemp /tmp/gateway-load.XXXXXX.log)
"$BUILD/samples/gateway" --demo --listen 127.0.0.1:$PORT --rate "$RATE" --burst "$BURST" --log "$LOG" \
  --shutdown-timeout 5s > "$LOG.out" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.05; done

metric() { curl -s "$URL/metrics" | awk -v k="$1" 'index($0, k" ") == 1 { print $NF }'; }
fds() { ls /proc/$PID/fd | wc -l; }
# Resting state: let the connection of the healthz probe go first.
for _ in $(seq 50); do [ "$(metric gateway_fibers)" = "$(metric gateway_fibers)" ] && break; sleep 0.05; done
FD0=$(fds); FIB0=$(metric gateway_fibers)

wrk -t2 -c50 -d"$DURATION" --timeout 60s -s "$HERE/load.lua" "$URL/api/fast/item" -- "$KEYS" "$QUOTA" > "$LOG.wrk"
cat "$LOG.wrk"

M=$(curl -s "$URL/metrics")
get() { awk -v k="$1" 'index($0, k" ") == 1 { print $NF }' <<< "$M"; }
OK=$(get 'gateway_requests_total{route="/api/fast",status="200"}'); OK=${OK:-0}
LIM=$(get 'gateway_requests_total{route="/api/fast",status="429"}'); LIM=${LIM:-0}
OTHER=$(grep '^gateway_requests_total{route="/api/fast"' <<< "$M" | grep -v 'status="200"\|status="429"' | awk "{s+=\$NF} END {print s+0}" || true)
FIRST=$(get gateway_api_first_request_seconds); LAST=$(get gateway_api_last_request_seconds)
read -r SENT DONE W200 W429 WOTHER < <(sed -n 's/^LUA sent=\([0-9]*\) completed=\([0-9]*\) ok200=\([0-9]*\) limited429=\([0-9]*\) other=\([0-9]*\).*/\1 \2 \3 \4 \5/p' "$LOG.wrk")
SPAN=$(awk -v a="$FIRST" -v b="$LAST" 'BEGIN { printf "%.3f", b - a }')
BOUND=$(awk -v k="$KEYS" -v b="$BURST" -v r="$RATE" -v s="$SPAN" 'BEGIN { printf "%d", k * (b + int(r * s)) }')
echo "wrk:     sent $SENT, completed $DONE (200: $W200, 429: $W429, other: $WOTHER)"
echo "gateway: /api/fast 200: $OK, 429: $LIM, other: $OTHER, total $((OK + LIM + OTHER))"
echo "limit:   allowed $OK over a span of ${SPAN}s; the buckets could grant KEYS*(BURST + floor(RATE*span)) = $BOUND"
echo "         (difference $((BOUND - OK)); throughput $(awk -v n="$DONE" -v s="$SPAN" 'BEGIN { printf "%.0f", n / s }') req/s over the span)"

curl -s -XPOST "$URL/admin/close-idle" >/dev/null
for _ in $(seq 100); do
  [ "$(fds)" -le "$FD0" ] && [ "$(metric gateway_fibers)" -le "$FIB0" ] && break; sleep 0.05
done
FD1=$(fds); FIB1=$(metric gateway_fibers)
echo "leaks:   fds $FD0 -> $FD1, fibers $FIB0 -> $FIB1"
kill -TERM $PID; wait $PID; RC=$?
trap - EXIT
REQLINES=$(grep -c '"event":"request".*"route":"/api/fast"' "$LOG" || true)
echo "log:     $REQLINES request lines for /api/fast, $(grep -c '"event":"limit"' "$LOG") limit lines; exit status $RC"
tail -1 "$LOG.out"
[ "$SENT" = "$DONE" ] && [ "$DONE" = "$((OK + LIM + OTHER))" ] && [ "$W200" = "$OK" ] && [ "$W429" = "$LIM" ] \
  && [ "$REQLINES" = "$DONE" ] && [ "$FD0" = "$FD1" ] && [ "$FIB0" = "$FIB1" ] && [ "$OK" -le "$BOUND" ] \
  && echo "RESULT: PASS" || { echo "RESULT: FAIL"; exit 1; }
rm -f "$LOG" "$LOG.out" "$LOG.wrk"
