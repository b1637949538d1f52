#!/usr/bin/env bash
# make bench: nginx origin; nginx, a bare Pingora proxy (examples/bare_pingora.rs)
# and Parapet as proxies, each pinned to one core with one worker; wrk on the other
# core. Prints req/s, p50/p99 latency and each proxy's CPU microseconds per request
# (utime+stime / requests), medians of ROUNDS same-run rounds, and Parapet's ratio
# to nginx and to bare Pingora. Then one round per proxy with a new connection per
# request, and the RSS that IDLE (10,000) idle keep-alive connections add.
# Bounded: ROUNDS x 3 x (DURATION + 1) + 3 x DURATION + 3 x ~20 seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
OUT=/tmp/parapet-bench
PARAPET=${PARAPET:-target/release/parapet}
BARE=${BARE:-target/release/examples/bare_pingora}
mkdir -p "$OUT"
: > "$OUT/access.log"; : > "$OUT/nginx-access.log"

cores=$(nproc)
if [ "$cores" -ge 2 ]; then PROXY_CPU=0; LOAD_CPU=1; else PROXY_CPU=0; LOAD_CPU=0; fi
# Backgrounded processes are started with taskset directly (not through a shell
# function) so that $! is the process itself.
pin() { local cpu=$1; shift; taskset -c "$cpu" "$@"; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2; return 1
}

# CPU ticks (utime+stime) of a process and its threads/children.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tree_ticks() {
    local total=0 p
    for p in "$@"; do total=$((total + $(ticks "$p"))); done
    echo "$total"
}

taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & pids+=($!)
wait_port 18081

taskset -c "$PROXY_CPU" nginx -c "$PWD/bench/nginx-proxy.conf" -p "$OUT" & pids+=($!)
nginx_master=$!
wait_port 18090
nginx_pids=("$nginx_master" $(pgrep -P "$nginx_master"))

RUST_LOG=error taskset -c "$PROXY_CPU" "$BARE" & pids+=($!)
bare_pid=$!
wait_port 18092

RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c ${PARAPET_CONF:-bench/parapet.yaml} & pids+=($!)
parapet_pid=$!
wait_port 18091

HZ=$(getconf CLK_TCK)

# run NAME PORT PIDS... -> "rps p50_ms p99_ms us_per_req"
run() {
    local port=$1; shift
    local before after out rps reqs p50 p99
    pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$port/" >/dev/null
    before=$(tree_ticks "$@")
    out=$(pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port/")
    after=$(tree_ticks "$@")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    non2xx=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    if [ -n "$non2xx" ]; then echo "port $port: $non2xx non-2xx responses" >&2; fi
    awk -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
        'function ms(x) { if (x ~ /us$/) return x / 1000; if (x ~ /ms$/) return x + 0; if (x ~ /s$/) return x * 1000; return x }
         BEGIN { printf "%s %.3f %.3f %.2f\n", rps, ms(p50), ms(p99), t / hz * 1e6 / n }'
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

: > "$OUT/results"
for round in $(seq 1 "$ROUNDS"); do
    n=$(run 18090 "${nginx_pids[@]}")
    b=$(run 18092 "$bare_pid")
    p=$(run 18091 "$parapet_pid")
    cpu_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.3f", x[4] / y[4] }'; }
    ratio=$(cpu_ratio "$p" "$n")
    { echo "nginx $n"; echo "bare $b"; echo "parapet $p"; echo "ratio $ratio";
      echo "bare_ratio $(cpu_ratio "$b" "$n")"; echo "own_ratio $(cpu_ratio "$p" "$b")"; } >> "$OUT/results"
    echo "round $round: nginx [$n]  bare [$b]  parapet [$p]  parapet/nginx $ratio" >&2
done

col() { awk -v who="$1" -v c="$2" '$1 == who { print $(c + 1) }' "$OUT/results" | median; }
echo
echo "Pass-through, keep-alive both sides, $CONNECTIONS connections, ${DURATION}s x $ROUNDS rounds (medians)"
printf "%-8s %12s %10s %10s %14s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu us/req"
for who in nginx bare parapet; do
    printf "%-8s %12.0f %10.3f %10.3f %14.2f\n" "$who" "$(col $who 1)" "$(col $who 2)" "$(col $who 3)" "$(col $who 4)"
done
ratio_of() { awk -v k="$1" '$1 == k { print $2 }' "$OUT/results" | median; }
echo "CPU per request, medians of same-round ratios:"
echo "  parapet / nginx        $(ratio_of ratio)"
echo "  bare pingora / nginx   $(ratio_of bare_ratio)"
echo "  parapet / bare pingora $(ratio_of own_ratio)"

# New TCP connection per request (no client keep-alive), one round each.
echo
echo "New connection per request (Connection: close), ${DURATION}s each"
printf "%-8s %12s %10s %10s %14s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu us/req"
close_run() {
    local who=$1 port=$2; shift 2
    local before after out reqs
    before=$(tree_ticks "$@")
    out=$(pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "Connection: close" "http://127.0.0.1:$port/")
    after=$(tree_ticks "$@")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$out" | awk -v who="$who" -v t=$((after - before)) -v hz="$HZ" -v n="$reqs" \
        'function ms(x) { if (x ~ /us$/) return x / 1000; if (x ~ /ms$/) return x + 0; if (x ~ /s$/) return x * 1000; return x }
         /Requests\/sec/ { rps = $2 } $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) }
         END { printf "%-8s %12.0f %10.3f %10.3f %14.2f\n", who, rps, p50, p99, t / hz * 1e6 / n }'
}
close_run nginx 18090 "${nginx_pids[@]}"
close_run bare 18092 "$bare_pid"
close_run parapet 18091 "$parapet_pid"

# Memory: RSS added by IDLE idle keep-alive client connections.
IDLE=${IDLE:-10000}
rss_kb() { local total=0 p; for p in "$@"; do total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$total"; }
idle_run() {
    local who=$1 port=$2; shift 2
    local before after client
    before=$(rss_kb "$@")
    python3 bench/idle_clients.py "$port" "$IDLE" > "$OUT/idle.$who" 2>&1 & client=$!
    for _ in $(seq 1 600); do grep -q ready "$OUT/idle.$who" && break; sleep 0.1; done
    after=$(rss_kb "$@")
    kill "$client" 2>/dev/null || true; wait "$client" 2>/dev/null || true
    printf "%-8s %10s %12d kB %14.0f\n" "$who" "$(awk '{print $2}' "$OUT/idle.$who")" $((after - before)) \
        "$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { print (a - b) * 1024 / n }')"
    sleep 1
}
echo
echo "Memory with $IDLE idle keep-alive client connections"
printf "%-8s %10s %15s %14s\n" proxy answered "RSS added" "bytes/conn"
idle_run nginx 18090 "${nginx_pids[@]}"
idle_run bare 18092 "$bare_pid"
idle_run parapet 18091 "$parapet_pid"
