#!/usr/bin/env bash
# bench/disk_hit.sh: CPU per request of cache hits with the disk tier, in pairs
# (bench/lib.sh's paired: both proxies on one core, loaded at once). KEYS objects of
# 3 KiB (bench/nginx-cache-origin.conf's /obj/<k>), asked for at random by wrk.
#   MODE=disk (default)  A: a 64 MiB memory store holding every object.
#                        B: a 1 MiB memory store over the disk tier: most of B's
#                           hits read a file (page cache warm); the share is printed.
#   MODE=memory          A: memory only. B: the same with the disk tier on, so both
#                           answer from memory: what the tier costs a memory hit.
#   MODE=nginx           A: nginx's proxy_cache (bench/nginx-cache-proxy.conf, its
#                           `hot` zone: files, page cache warm). B: as in MODE=disk.
#                           The objects are /c/o<k>, 3 KiB files under www/c.
# Prints each round's B/A and the median of ROUNDS. Needs nginx, wrk, curl and a
# release build. Uses bench/cache.sh's origin port and files: not beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${MODE:-disk}
KEYS=${KEYS:-5000}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-4}
CONNECTIONS=${CONNECTIONS:-32}
PARAPET=${PARAPET:-target/release/parapet}
OUT=/tmp/parapet-bench
mkdir -p "$OUT/www"
PROXY_CPU=0; LOAD_CPU=$(($(nproc) > 1 ? 1 : 0))
# shellcheck source=bench/lib.sh
source bench/lib.sh
paired_load() {
    taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -s "$OUT/keys.lua" \
        "http://127.0.0.1:$1/" > "$OUT/paired.$2"
}

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

PREFIX=/obj/
if [ "$MODE" = nginx ]; then
    PREFIX=/c/o
    mkdir -p "$OUT/www/c"
    head -c 3072 /dev/zero | tr '\0' c > "$OUT/www/c/o1"
    for k in $(seq 2 "$KEYS"); do [ -e "$OUT/www/c/o$k" ] || ln "$OUT/www/c/o1" "$OUT/www/c/o$k"; done
fi
cat > "$OUT/keys.lua" <<LUA
request = function() return wrk.format("GET", "$PREFIX" .. math.random(1, $KEYS)) end
LUA
cat > "$OUT/keys-in-order.lua" <<LUA
local n = 0
request = function() n = n + 1; return wrk.format("GET", "$PREFIX" .. (n % $KEYS + 1)) end
LUA
head -c 3072 /dev/zero | tr '\0' c > "$OUT/www/obj"
taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-cache-origin.conf" -p "$OUT" & pids+=($!)
wait_port 18082

# conf NAME PORT ADMIN_PORT MEMORY [DISK_DIR]: bench/parapet-cache.yaml on its own
# ports and files, with that memory store and, given a directory, the disk tier.
conf() {
    sed -e "s/127\.0\.0\.1:18097/127.0.0.1:$2/" -e "s/127\.0\.0\.1:19907/127.0.0.1:$3/" \
        -e "s#/tmp/parapet-bench/cache-#$OUT/$1-#g" -e "s/^  max_size: .*/  max_size: $4/" \
        bench/parapet-cache.yaml > "$OUT/$1.yaml"
    if [ -n "${5:-}" ]; then
        rm -rf "$5"; mkdir -p "$5"
        sed -i "s#^  max_object_size: 1MiB#&\n  disk: { path: $5, max_size: 1GiB }#" "$OUT/$1.yaml"
    fi
    echo "$OUT/$1.yaml"
}
case $MODE in
    disk) conf_a=$(conf disk-hit-a 18111 19911 64MiB); conf_b=$(conf disk-hit-b 18112 19912 1MiB "$OUT/disk-hit-dir") ;;
    memory) conf_a=$(conf disk-hit-a 18111 19911 64MiB); conf_b=$(conf disk-hit-b 18112 19912 64MiB "$OUT/disk-hit-dir") ;;
    nginx) conf_b=$(conf disk-hit-b 18112 19912 1MiB "$OUT/disk-hit-dir") ;;
    *) echo "MODE is disk or memory" >&2; exit 1 ;;
esac
port_a=18111
if [ "$MODE" = nginx ]; then
    port_a=18096
    rm -rf "$OUT/nginx-cache/hot"
    taskset -c "$PROXY_CPU" nginx -c "$PWD/bench/nginx-cache-proxy.conf" -p "$OUT" & pids+=($!); master=$!
    wait_port 18096
    pid_a="$master $(pgrep -P "$master" | tr '\n' ' ')"
else
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$conf_a" & pids+=($!); pid_a=$!
    wait_port 18111
fi
RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$conf_b" & pids+=($!); pid_b=$!
wait_port 18112

metric() { curl -s "http://127.0.0.1:19912/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# Every object fetched (in order), then a random pass to settle the memory stores.
for port in "$port_a" 18112; do pin "$LOAD_CPU" wrk -t1 -c4 -d3s -s "$OUT/keys-in-order.lua" "http://127.0.0.1:$port/" >/dev/null; done
for _ in $(seq 1 50); do [ "$(metric parapet_cache_disk_objects)" -ge "$KEYS" ] && break; sleep 0.1; done
echo "disk tier of B: $(metric parapet_cache_disk_objects) objects"
for port in "$port_a" 18112; do pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d2s -s "$OUT/keys.lua" "http://127.0.0.1:$port/" >/dev/null; done

hits0=$(metric 'parapet_cache_lookups_total{result="hit"}'); disk0=$(metric parapet_cache_disk_hits_total)
: > "$OUT/disk-hit"
for round in $(seq 1 "$ROUNDS"); do
    b_first=$([ $((round % 2)) -eq 0 ] && echo yes || true)
    paired "$port_a" "$pid_a" 18112 "$pid_b" "$b_first" |
        awk '{ printf "%.3f %s %s\n", $2 / $1, $1, $2 }' | tee -a "$OUT/disk-hit" |
        awk -v r="$round" '{ printf "round %d: B/A %s (A %s us, B %s us per request)\n", r, $1, $2, $3 }'
done
hits1=$(metric 'parapet_cache_lookups_total{result="hit"}'); disk1=$(metric parapet_cache_disk_hits_total)
echo "B's hits from disk: $((disk1 - disk0)) of $((hits1 - hits0))"
echo "MODE=$MODE B/A, median of $ROUNDS pairs: $(awk '{ print $1 }' "$OUT/disk-hit" | median)"
