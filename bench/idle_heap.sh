#!/usr/bin/env bash
# bench/idle_heap.sh: where the memory of an idle keep-alive connection goes. Runs
# the heap-profiling build (system allocator, symbols) under valgrind's massif with
# IDLE idle connections (one request each, then idle) and prints the heap tree at
# the peak, by allocation site. Needs valgrind, nginx and python3. Bounded: about
# 2 minutes (the build aside: cargo build --profile heap-profile --features
# system-alloc --bin parapet).
set -euo pipefail
cd "$(dirname "$0")/.."
IDLE=${IDLE:-2000}
READ_BUFFER=${READ_BUFFER:-8KiB}
OUT=/tmp/parapet-bench
BIN=${BIN:-target/heap-profile/parapet}
mkdir -p "$OUT"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
# shellcheck source=bench/lib.sh
CONNECTIONS=1 LOAD_CPU=1 source bench/lib.sh
nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & pids+=($!)
wait_port 18081
sed "s#^  - address: 127.0.0.1:18091\$#  - address: 127.0.0.1:18091\n    read_buffer: $READ_BUFFER#" \
    bench/parapet.yaml > "$OUT/heap.yaml"
RUST_LOG=error valgrind --tool=massif --threshold=2 --depth=40 --time-unit=ms --detailed-freq=1 \
    --massif-out-file="$OUT/massif.out" "$BIN" -c "$OUT/heap.yaml" 2> "$OUT/massif.log" & pids+=($!)
for _ in $(seq 1 120); do (exec 3<>/dev/tcp/127.0.0.1/18091) 2>/dev/null && break; sleep 1; done
python3 bench/idle_clients.py 18091 "$IDLE" > "$OUT/idle.heap" 2>&1 & client=$!
for _ in $(seq 1 600); do grep -q ready "$OUT/idle.heap" && break; sleep 0.1; done
sleep 3
kill -INT "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
kill "$client" 2>/dev/null || true
ms_print "$OUT/massif.out" | sed -n '/^ *n *time/,$p' | grep -E "^[0-9. ]*[0-9]+\.[0-9]+% \(|^->|^\| *->" | head -120
