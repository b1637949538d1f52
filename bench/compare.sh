#!/usr/bin/env bash
# bench/compare.sh: what a change costs, as CPU per request of Parapet B over Parapet A,
# measured in pairs (both on one core, loaded at once: see paired in bench/lib.sh).
#
#   bench/compare.sh CONF_A [CONF_B]             two configurations, one build
#   PARAPET_B=path/to/other bench/compare.sh CONF two builds, one configuration
#
# Each configuration is written like bench/parapet.yaml (listener 127.0.0.1:18091,
# admin 127.0.0.1:19901, files under /tmp/parapet-bench/); the copies that run get
# their own ports and files. Prints each round's ratio and the median of ROUNDS (7).
# Needs nginx and wrk (make bench-deps) and release builds.
set -euo pipefail
cd "$(dirname "$0")/.."

CONF_A=${1:?usage: bench/compare.sh CONF_A [CONF_B]}
CONF_B=${2:-$CONF_A}
PARAPET_A=${PARAPET_A:-target/release/parapet}
PARAPET_B=${PARAPET_B:-$PARAPET_A}
ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-32}
OUT=/tmp/parapet-bench
mkdir -p "$OUT"
PROXY_CPU=0; LOAD_CPU=$(($(nproc) > 1 ? 1 : 0))
# shellcheck source=bench/lib.sh
source bench/lib.sh

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# side NAME CONF PORT ADMIN_PORT: the configuration with its own port and files.
side() {
    sed -e "s/127\.0\.0\.1:18091/127.0.0.1:$3/" -e "s/127\.0\.0\.1:19901/127.0.0.1:$4/" \
        -e "s#/tmp/parapet-bench/#$OUT/$1-#g" "$2" > "$OUT/$1.yaml"
    echo "$OUT/$1.yaml"
}

taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & pids+=($!)
wait_port 18081
RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET_A" -c "$(side a "$CONF_A" 18093 19903)" & pids+=($!)
pid_a=$!
RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET_B" -c "$(side b "$CONF_B" 18094 19904)" & pids+=($!)
pid_b=$!
wait_port 18093; wait_port 18094
for port in 18093 18094; do pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$port/" >/dev/null; done

: > "$OUT/compare"
for round in $(seq 1 "$ROUNDS"); do
    b_first=$([ $((round % 2)) -eq 0 ] && echo yes || true)
    paired 18093 "$pid_a" 18094 "$pid_b" "$b_first" |
        awk '{ printf "%.3f %s %s\n", $2 / $1, $1, $2 }' | tee -a "$OUT/compare" |
        awk -v r="$round" '{ printf "round %d: B/A %s (A %s us, B %s us per request)\n", r, $1, $2, $3 }'
done
echo "B/A, median of $ROUNDS pairs: $(awk '{ print $1 }' "$OUT/compare" | median)"
