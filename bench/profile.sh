#!/usr/bin/env bash
# bench/profile.sh: where Parapet's CPU time goes, for bench/RESULTS.md. Runs the
# release build with the bench config pinned to core 0 behind wrk (core 1), samples
# it with perf for SAMPLE seconds (8), and prints self time grouped (kernel, allocation,
# tokio, header handling, Pingora, libc, Parapet's own modules) and the top
# functions. Needs perf (linux-perf), nginx and wrk (make bench-deps), and
# target/release/parapet (make release). MODE=hit profiles a 1 KiB cache hit instead
# (bench/parapet-cache.yaml in front of bench/nginx-cache-origin.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=/tmp/parapet-bench
SAMPLE=${SAMPLE:-8}
mkdir -p "$OUT"
# shellcheck source=bench/lib.sh
source bench/lib.sh
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf; }
: > "$OUT/access.log"

case ${MODE:-passthrough} in
    passthrough) origin_conf=nginx-origin.conf conf=bench/parapet.yaml url=http://127.0.0.1:18091/ ;;
    hit)
        origin_conf=nginx-cache-origin.conf conf=bench/parapet-cache.yaml url=http://127.0.0.1:18097/c/1k
        mkdir -p "$OUT/www/c"
        head -c 1024 /dev/zero | tr '\0' a > "$OUT/www/c/1k" ;;
    *) echo "MODE is passthrough or hit" >&2; exit 2 ;;
esac
port=${url#http://127.0.0.1:}; port=${port%%/*}
taskset -c 1 nginx -c "$PWD/bench/$origin_conf" -p "$OUT" & origin=$!
RUST_LOG=error taskset -c 0 target/release/parapet -c "$conf" & proxy=$!
trap 'kill $origin $proxy 2>/dev/null || true' EXIT
wait_port "$port"
taskset -c 1 wrk -t1 -c32 -d1s "$url" >/dev/null
taskset -c 1 wrk -t1 -c32 -d"$((SAMPLE + 2))s" "$url" >/dev/null & load=$!
sleep 0.5
perf record -q -F 2999 -p "$proxy" -o "$OUT/perf.data" -- sleep "$SAMPLE" 2>/dev/null
wait "$load"

perf report -i "$OUT/perf.data" --no-children --sort sym --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ { pct = $1; sub("%", "", pct); $1 = ""; print pct "\t" substr($0, 2) }' > "$OUT/profile.tsv"

awk -F'\t' '
function group(s) {
    if (s ~ /^\[k\]/) return "kernel (TCP, syscalls, scheduler)"
    if (s ~ /mi_|malloc|free|__rust_(alloc|dealloc|realloc)/) return "allocation (mimalloc)"
    if (s ~ /parapet::/) return "Parapet: its own modules"
    if (s ~ /tokio::|mio::/) return "tokio"
    if (s ~ /http::header|httparse|pingora_http|bytes::|HeaderMap|HeaderName|HeaderValue/) return "header handling (http, httparse, pingora-http, bytes)"
    if (s ~ /pingora_cache|tinyufo|TinyUFO|zstd|ZSTD|HUF_|FSE_|blake2/) return "pingora-cache (lookup, meta, key hashing)"
    if (s ~ /pingora|lru/) return "Pingora (proxy, h1 sessions, pool, timers, lb)"
    if (s ~ /memmove|memcpy|memset|clock_gettime|__send|__recv|__libc|syscall|epoll|pthread/) return "libc (memcpy, clock, syscall stubs)"
    return "other (std, core, hashing)"
}
{ g[group($2)] += $1 }
END { for (k in g) printf "%6.1f%%  %s\n", g[k], k }' "$OUT/profile.tsv" | sort -rn
echo
echo "Top functions by self time:"
sort -t$'\t' -k1 -rn "$OUT/profile.tsv" | head -25 | awk -F'\t' '{ printf "%6.2f%%  %s\n", $1, substr($2, 1, 110) }'
