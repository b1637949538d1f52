#!/usr/bin/env bash
# bench/read_buffer.sh: what a listener's `read_buffer` costs and saves. For each
# size in SIZES (KiB): the RSS that IDLE idle keep-alive connections add to Parapet
# (one request each, then idle), and the CPU per request against the 64 KiB default,
# in pairs (bench/compare.sh), for a small answer and a 100 KiB one.
# Needs nginx, wrk, python3 and a release build. Bounded: about
# SIZES x (20 s + 2 x ROUNDS x DURATION) seconds: 4 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"64 16 8 4"}
IDLE=${IDLE:-10000}
export ROUNDS=${ROUNDS:-5} DURATION=${DURATION:-3}
PARAPET=${PARAPET:-target/release/parapet}
OUT=/tmp/parapet-bench
mkdir -p "$OUT/www/c"
head -c 102400 /dev/zero | tr '\0' b > "$OUT/www/c/100k"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# conf SIZE: bench/parapet.yaml with the listener's read_buffer set.
conf() {
    sed "s#^  - address: 127.0.0.1:18091\$#  - address: 127.0.0.1:18091\n    read_buffer: ${1}KiB#" \
        bench/parapet.yaml > "$OUT/read-buffer-$1.yaml"
    echo "$OUT/read-buffer-$1.yaml"
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
taskset -c 1 nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & pids+=($!)
# shellcheck source=bench/lib.sh
CONNECTIONS=32 LOAD_CPU=1 source bench/lib.sh
wait_port 18081

declare -A idle
for size in $SIZES; do
    RUST_LOG=error taskset -c 0 "$PARAPET" -c "$(conf "$size")" & pid=$!
    wait_port 18091
    before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    python3 bench/idle_clients.py 18091 "$IDLE" > "$OUT/idle.rb" 2>&1 & client=$!
    for _ in $(seq 1 600); do grep -q ready "$OUT/idle.rb" && break; sleep 0.1; done
    after=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    kill "$client" "$pid" 2>/dev/null || true; wait "$client" "$pid" 2>/dev/null || true
    idle[$size]=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }')
    sleep 1
done
# bench/compare.sh starts its own origin.
cleanup; pids=()

printf "%-10s %16s %18s %18s\n" read_buffer "idle bytes/conn" "CPU small vs 64K" "CPU 100KiB vs 64K"
for size in $SIZES; do
    c=$(conf "$size")
    small=$(PARAPET_A="$PARAPET" bench/compare.sh "$(conf 64)" "$c" 2>/dev/null | awk '/median/ { print $NF }')
    big=$(PAIR_PATH=/c/100k PARAPET_A="$PARAPET" bench/compare.sh "$(conf 64)" "$c" 2>/dev/null | awk '/median/ { print $NF }')
    printf "%-10s %16s %18s %18s\n" "${size}KiB" "${idle[$size]}" "$small" "$big"
done
