#!/usr/bin/env bash
# bench/instructions.sh: user-space instructions per request under callgrind, which
# counts instructions rather than time and so repeats closely on a noisy machine.
# Runs bare Pingora, Parapet with a minimal config, and Parapet with the bench
# config, each behind wrk for a few seconds after a warm-up, against the nginx
# bench origin. Needs valgrind (installed if missing), nginx and wrk (make bench-deps),
# and the release binaries (make release; cargo build --release --example bare_pingora).
# PARAPET=path measures another Parapet build (for example the one before a change).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=/tmp/parapet-bench
PARAPET=${PARAPET:-target/release/parapet}
mkdir -p "$OUT"
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }

cat > "$OUT/minimal.yaml" <<YAML
version: 1
threads: 1
work_stealing: false
pid_file: $OUT/minimal.pid
upgrade_sock: $OUT/minimal.sock
grace_period_seconds: 0
listeners: [{address: "127.0.0.1:18091"}]
upstreams: {app: {backends: [{address: "127.0.0.1:18081"}]}}
routes: [{upstream: app}]
YAML

nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & origin=$!
trap 'kill $origin 2>/dev/null || true' EXIT
sleep 0.5

# measure NAME PORT CMD...: prints instructions per request
measure() {
    local name=$1 port=$2; shift 2
    rm -f "$OUT"/callgrind.out.*
    : > "$OUT/access.log"
    RUST_LOG=error valgrind --tool=callgrind --instr-atstart=no \
        --callgrind-out-file="$OUT/callgrind.out.%p" "$@" >"$OUT/callgrind.log" 2>&1 &
    local vg=$!
    for _ in $(seq 1 150); do (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.2; done
    wrk -t1 -c8 -d3s "http://127.0.0.1:$port/" >/dev/null
    callgrind_control -i on "$vg" >/dev/null
    local n
    n=$(wrk -t1 -c8 -d8s "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    callgrind_control -i off "$vg" >/dev/null
    callgrind_control -d "$vg" >/dev/null
    sleep 1
    kill -INT "$vg"; sleep 2; kill -9 "$vg" 2>/dev/null || true
    local ir
    ir=$(grep -h "^totals:" "$OUT"/callgrind.out.* | awk '{s += $2} END {print s}')
    printf "%-22s %8d requests %10d instructions/request\n" "$name" "$n" $((ir / n))
}

measure "bare pingora" 18092 target/release/examples/bare_pingora
measure "parapet (minimal)" 18091 "$PARAPET" -c "$OUT/minimal.yaml"
measure "parapet (bench config)" 18091 "$PARAPET" -c bench/parapet.yaml
