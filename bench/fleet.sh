#!/usr/bin/env bash
# bench/fleet.sh: the fleet (README "A fleet"), run alone (`make bench PARTS=fleet`
# or `bench/fleet.sh`). Needs nginx, wrk, redis-server (make bench-deps) and the
# release build.
#
# 1. Origin fetches per object, 3 edges: bench/zipf.py sends ZIPF_REQUESTS requests
#    for /obj/<k> (Zipf(1.0) over 10,000 keys) to each of 3 edges at once (seeds 1,
#    2, 3), each edge with room for every object. Without tiering the edges go to the
#    origin (bench/nginx-cache-origin.conf) themselves; with it they go to 2 shields
#    by `hash_key: cache_key`. Counted in the origin's access log, per object asked.
# 2. A global rate limit against the local one: bench/parapet.yaml against
#    bench/parapet-global.yaml (the same, `scope: global`, Redis on 16379) in pairs
#    (bench/compare.sh), and Redis's own count of lease calls per 1,000 requests.
set -euo pipefail
cd "$(dirname "$0")/.."
PARAPET=${PARAPET:-target/release/parapet}
OUT=/tmp/parapet-bench
ZIPF_REQUESTS=${ZIPF_REQUESTS:-20000}
mkdir -p "$OUT/www"
LOAD_CPU=$(($(nproc) > 1 ? 1 : 0))
CONNECTIONS=32 DURATION=4
# shellcheck source=bench/lib.sh
source bench/lib.sh
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

head -c 3072 /dev/zero | tr '\0' c > "$OUT/www/obj"
: > "$OUT/cache-origin.log"
taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-cache-origin.conf" -p "$OUT" & pids+=($!)
wait_port 18082

# conf NAME PORT UPSTREAM_YAML: a caching Parapet on PORT.
conf() {
    cat > "$OUT/fleet-$1.yaml" <<EOF
version: 1
threads: 1
pid_file: $OUT/fleet-$1.pid
upgrade_sock: $OUT/fleet-$1.sock
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
name: $1
listeners: [{address: 127.0.0.1:$2}]
upstreams:
  up: $3
routes: [{upstream: up, cache: true}]
cache: {max_size: 128MiB}
EOF
    echo "$OUT/fleet-$1.yaml"
}
start() { RUST_LOG=error "$PARAPET" -c "$1" 2>> "$OUT/fleet.log" & pids+=($!); }
origin_fetches() { grep -c '^/obj/' "$OUT/cache-origin.log" || true; }

# zipf_edges: the three loads at once; prints the distinct objects they asked for.
zipf_edges() {
    local seed
    for seed in 1 2 3; do
        python3 bench/zipf.py run $((18110 + seed)) "$seed" --requests "$ZIPF_REQUESTS" \
            --keys 10000 --s 1.0 --connections 8 --max-seconds 60 > "$OUT/fleet-zipf.$seed" &
    done
    wait %1 %2 %3 2>/dev/null || wait
    python3 - "$ZIPF_REQUESTS" <<'PY'
import sys
sys.path.insert(0, "bench")
import zipf
n = int(sys.argv[1])
print(len(set().union(*(set(zipf.sequence(s, n, 10000, 1.0)) for s in (1, 2, 3)))))
PY
}

echo "== origin fetches per object, 3 edges, Zipf(1.0) over 10,000 keys, $ZIPF_REQUESTS requests each"
for mode in direct tiered; do
    : > "$OUT/cache-origin.log"
    first=${#pids[@]}
    if [ "$mode" = tiered ]; then
        for s in 1 2; do
            start "$(conf "shield-$s" $((18120 + s)) '{backends: [{address: 127.0.0.1:18082}]}')"
            wait_port $((18120 + s))
        done
        up='{backends: [{address: 127.0.0.1:18121}, {address: 127.0.0.1:18122}], selection: consistent_hash, hash_key: cache_key}'
    else
        up='{backends: [{address: 127.0.0.1:18082}]}'
    fi
    for e in 1 2 3; do start "$(conf "edge-$e" $((18110 + e)) "$up")"; wait_port $((18110 + e)); done
    objects=$(zipf_edges)
    fetched=$(origin_fetches)
    awk -v m="$mode" -v f="$fetched" -v o="$objects" \
        'BEGIN { printf "%-7s origin fetches %d for %d objects: %.2f per object\n", m, f, o, f / o }'
    for p in "${pids[@]:$first}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
done

echo "== a global rate limit against the local one (bench/compare.sh, in pairs)"
redis-server --port 16379 --bind 127.0.0.1 --save "" --appendonly no > /dev/null & pids+=($!)
wait_port 16379
PARAPET_A="$PARAPET" bench/compare.sh bench/parapet.yaml bench/parapet-global.yaml | tail -n 1
echo "== Redis round trips per 1,000 requests, one global key under wrk (5 s)"
taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & pids+=($!)
wait_port 18081
start bench/parapet-global.yaml
wait_port 18091
sleep 0.5
redis-cli -p 16379 config resetstat > /dev/null
taskset -c "$LOAD_CPU" wrk -t1 -c32 -d5s http://127.0.0.1:18091/ > "$OUT/fleet-wrk.out"
requests=$(awk '/requests in/ {print $1}' "$OUT/fleet-wrk.out")
calls=$(redis-cli -p 16379 info commandstats | awk -F'[:=,]' '/cmdstat_(evalsha|eval):/ {n += $3} END {print n + 0}')
awk -v r="$requests" -v c="$calls" 'BEGIN { printf "requests %d, lease calls %d: %.2f per 1,000 requests\n", r, c, c * 1000 / r }'
