#!/usr/bin/env bash
# make bench: nginx origin; nginx, a bare Pingora proxy (examples/bare_pingora.rs)
# and Parapet as proxies, each pinned to one core with one worker; wrk on the other
# core. Runs the parts named in PARTS, comma-separated (`PARTS=passthrough,cache
# bench/run.sh`, `make bench PARTS=cache`); unset or `all` runs every part, in this
# order:
#   passthrough  req/s, p50/p99 latency and each proxy's CPU microseconds per request
#                (utime+stime / requests), one proxy at a time, medians of ROUNDS
#                rounds; then the CPU ratios again, measured in pairs (two proxies on
#                the proxy core, loaded at once; bench/lib.sh says why), medians of
#                PAIR_ROUNDS rounds: the figure of merit;
#   latency      latency at fixed rates (80% of nginx's median maximum; 80% and 50% of
#                Parapet's) from the open-loop client (examples/open_loop.rs),
#                LAT_ROUNDS rounds each; the maxima come from passthrough's rounds, or
#                from one solo round each when passthrough is not selected;
#   connections  one round per proxy with a new connection per request;
#   idle         the RSS that IDLE_SIZES (10,000 and 50,000) idle keep-alive
#                connections add, and what is left 5 s after they close (a size the
#                open-file hard limit cannot hold is replaced by the largest that fits);
#   silent       SILENT (10,000) connections to Parapet that never send a byte or stall
#                after a request line: RSS while they are open, a real client's latency
#                beside them, when the header timeout has closed them, RSS after;
#   cache        Parapet's cache against nginx's proxy_cache: CPU per hit in pairs
#                (1 KiB and 100 KiB), origin offload under a Zipf load, and what the
#                cache costs a route that does not cache (bench/cache.sh);
#   tls          TLS and HTTP/2 against nginx in pairs: HTTPS keep-alive, new
#                handshakes, HTTP/2 at 100 streams (bench/tls.sh);
#   scaling      req/s unpinned with 1 and 2 threads (nginx: worker processes);
#   allocations  allocations per request, from the counting build (target/alloc-count).
# Bounded: about ROUNDS x 3 x (DURATION + 1) + PAIR_ROUNDS x 3 x DURATION
# + 3 x LAT_ROUNDS x 3 x (LAT_DURATION + 1) + 3 x DURATION + about 60 (idle, at
# 10,000 and 19,000; about 2 minutes more where 50,000 fit) + about 20 (silent)
# + 4 x SCALE_ROUNDS x (DURATION + 1) + 2 x (DURATION + 2) seconds, about 9.5 minutes
# with the defaults, plus about 3 minutes for the cache part (see bench/cache.sh) and
# 1.5 minutes for the TLS part (bench/tls.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The idle part holds tens of thousands of connections: every process started here
# may open as many descriptors as the hard limit allows.
ulimit -n "$(ulimit -Hn)"

ROUNDS=${ROUNDS:-3}
PAIR_ROUNDS=${PAIR_ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
OUT=/tmp/parapet-bench
LAT_ROUNDS=${LAT_ROUNDS:-3}
LAT_DURATION=${LAT_DURATION:-4}
SCALE_ROUNDS=${SCALE_ROUNDS:-3}
PARAPET=${PARAPET:-target/release/parapet}
BARE=${BARE:-target/release/examples/bare_pingora}
OPEN_LOOP=${OPEN_LOOP:-target/release/examples/open_loop}
COUNTING=${COUNTING:-target/alloc-count}
PARAPET_CONF=${PARAPET_CONF:-bench/parapet.yaml}
ALL_PARTS="passthrough latency connections idle silent cache tls scaling allocations fleet"
PARTS=${PARTS:-all}
PARTS=${PARTS// /,}
for name in ${PARTS//,/ }; do
    case " all $ALL_PARTS " in
        *" $name "*) ;;
        *) echo "PARTS: unknown part '$name' (parts: all $ALL_PARTS, comma-separated)" >&2; exit 2 ;;
    esac
done
want() { case ",$PARTS," in *,all,* | *",$1,"*) return 0 ;; esac; return 1; }
# start_part NAME: announce a part and how long the previous one took.
part_started=$SECONDS; part_name=
start_part() {
    [ -n "$part_name" ] && echo "[part $part_name: $((SECONDS - part_started)) s]" >&2
    part_name=$1; part_started=$SECONDS
}
mkdir -p "$OUT"
: > "$OUT/access.log"; : > "$OUT/nginx-access.log"

cores=$(nproc)
if [ "$cores" -ge 2 ]; then PROXY_CPU=0; LOAD_CPU=1; else PROXY_CPU=0; LOAD_CPU=0; fi
# shellcheck source=bench/lib.sh
source bench/lib.sh
# shellcheck source=bench/cache.sh
source bench/cache.sh
# shellcheck source=bench/tls.sh
source bench/tls.sh

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-origin.conf" -p "$OUT" & pids+=($!)
origin_pid=$!
wait_port 18081

# The pinned proxies, for the parts that load them.
pinned=
if want passthrough || want latency || want connections || want idle || want silent; then
    pinned=yes
    taskset -c "$PROXY_CPU" nginx -c "$PWD/bench/nginx-proxy.conf" -p "$OUT" & pids+=($!)
    nginx_master=$!
    wait_port 18090
    nginx_pids=("$nginx_master" $(pgrep -P "$nginx_master"))

    RUST_LOG=error taskset -c "$PROXY_CPU" "$BARE" & pids+=($!)
    bare_pid=$!
    wait_port 18092

    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$PARAPET_CONF" & pids+=($!)
    parapet_pid=$!
    wait_port 18091
fi

HZ=$(getconf CLK_TCK)
port_of() { case $1 in nginx) echo 18090 ;; bare) echo 18092 ;; parapet) echo 18091 ;; esac; }
pids_of() { case $1 in nginx) echo "${nginx_pids[*]}" ;; bare) echo "$bare_pid" ;; parapet) echo "$parapet_pid" ;; esac; }

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

# solo_rounds N: N rounds of one proxy at a time, into $OUT/results.
cpu_ratio() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.3f", x[4] / y[4] }'; }
solo_rounds() {
    local round n b p ratio
    : > "$OUT/results"
    for round in $(seq 1 "$1"); do
        n=$(run 18090 "${nginx_pids[@]}")
        b=$(run 18092 "$bare_pid")
        p=$(run 18091 "$parapet_pid")
        ratio=$(cpu_ratio "$p" "$n")
        { echo "nginx $n"; echo "bare $b"; echo "parapet $p"; echo "ratio $ratio";
          echo "bare_ratio $(cpu_ratio "$b" "$n")"; echo "own_ratio $(cpu_ratio "$p" "$b")"; } >> "$OUT/results"
        echo "round $round: nginx [$n]  bare [$b]  parapet [$p]  parapet/nginx $ratio" >&2
    done
}
col() { awk -v who="$1" -v c="$2" '$1 == who { print $(c + 1) }' "$OUT/results" | median; }

if want passthrough; then
    start_part passthrough
    solo_rounds "$ROUNDS"
    echo
    echo "Pass-through, keep-alive both sides, $CONNECTIONS connections, ${DURATION}s x $ROUNDS rounds (medians)"
    printf "%-8s %12s %10s %10s %14s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu us/req"
    for who in nginx bare parapet; do
        printf "%-8s %12.0f %10.3f %10.3f %14.2f\n" "$who" "$(col $who 1)" "$(col $who 2)" "$(col $who 3)" "$(col $who 4)"
    done
    ratio_of() { awk -v k="$1" '$1 == k { print $2 }' "$OUT/results" | median; }
    echo "CPU per request, one proxy at a time, medians of same-round ratios:"
    echo "  parapet / nginx        $(ratio_of ratio)"
    echo "  bare pingora / nginx   $(ratio_of bare_ratio)"
    echo "  parapet / bare pingora $(ratio_of own_ratio)"

    # The issue's figure of merit, measured in pairs: both proxies of a pair on the
    # proxy core and loaded at once (see paired in bench/lib.sh). Each proxy gets about
    # half the core, still enough to keep it busy, so CPU per request is what it is
    # when saturated, and whatever slows the core slows both.
    : > "$OUT/paired"
    for round in $(seq 1 "$PAIR_ROUNDS"); do
        b_first=$([ $((round % 2)) -eq 0 ] && echo yes || true)
        for pair in "parapet nginx" "bare nginx" "parapet bare"; do
            read -r b a <<< "$pair"
            out=$(paired "$(port_of "$a")" "$(pids_of "$a")" "$(port_of "$b")" "$(pids_of "$b")" "$b_first")
            echo "$b/$a $out" | awk '{ printf "%s %.3f %s %s\n", $1, $3 / $2, $2, $3 }' >> "$OUT/paired"
            echo "paired round $round: $(tail -1 "$OUT/paired")" >&2
        done
    done
    paired_col() { awk -v k="$1" -v c="$2" '$1 == k { print $c }' "$OUT/paired" | median; }
    paired_range() { awk -v k="$1" '$1 == k { print $2 }' "$OUT/paired" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
    echo
    echo "CPU per request in pairs (both proxies on core $PROXY_CPU at once), ${DURATION}s x $PAIR_ROUNDS rounds (medians)"
    printf "%-16s %8s %12s   %s\n" pair ratio range "CPU us/req of each"
    for k in parapet/nginx bare/nginx parapet/bare; do
        printf "%-16s %8.2f %12s   %s %.2f, %s %.2f\n" "$k" "$(paired_col "$k" 2)" "$(paired_range "$k")" \
            "${k%/*}" "$(paired_col "$k" 4)" "${k#*/}" "$(paired_col "$k" 3)"
    done
fi

# Latency at fixed rates, open loop: 80% of nginx's median maximum from the rounds
# above (the issue's figure), then 80% and 50% of Parapet's, rates all three sustain.
latency_at() {
    local rate=$1 label=$2 round who out
    echo
    echo "Latency at $rate req/s ($label), open loop, $CONNECTIONS connections, ${LAT_DURATION}s x $LAT_ROUNDS rounds (medians, ms)"
    : > "$OUT/latency"
    for round in $(seq 1 "$LAT_ROUNDS"); do
        for who in nginx:18090 bare:18092 parapet:18091; do
            out=$(pin "$LOAD_CPU" "$OPEN_LOOP" "127.0.0.1:${who#*:}" "$rate" "$LAT_DURATION" "$CONNECTIONS")
            echo "${who%%:*} $out" | tr '=' ' ' | awk '{ print $1, $9, $11, $13, $15, $17, $7, $5 }' >> "$OUT/latency"
            echo "latency $rate round $round: ${who%%:*} $out" >&2
        done
    done
    printf "%-8s %10s %10s %10s %10s %10s %8s\n" proxy "req/s" p50 p99 p99.9 max errors
    for who in nginx bare parapet; do
        printf "%-8s %10.0f %10.3f %10.3f %10.3f %10.3f %8d\n" "$who" "$(lat $who 6)" "$(lat $who 1)" \
            "$(lat $who 3)" "$(lat $who 4)" "$(lat $who 5)" "$(lat $who 7)"
    done
    echo "p99, parapet / nginx: $(awk -v a="$(lat parapet 3)" -v b="$(lat nginx 3)" 'BEGIN { printf "%.2f", a / b }')"
}
lat() { awk -v who="$1" -v c="$2" '$1 == who { print $(c + 1) }' "$OUT/latency" | median; }
if want latency; then
    start_part latency
    if ! want passthrough; then
        echo "latency: the maxima from one solo round each (passthrough not selected)" >&2
        solo_rounds 1
    fi
    latency_at "$(awk -v r="$(col nginx 1)" 'BEGIN { printf "%d", r * 0.8 }')" "80% of nginx's maximum"
    latency_at "$(awk -v r="$(col parapet 1)" 'BEGIN { printf "%d", r * 0.8 }')" "80% of Parapet's maximum"
    latency_at "$(awk -v r="$(col parapet 1)" 'BEGIN { printf "%d", r * 0.5 }')" "50% of Parapet's maximum"
fi

# New TCP connection per request (no client keep-alive), one round each.
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
if want connections; then
    start_part connections
    echo
    echo "New connection per request (Connection: close), ${DURATION}s each"
    printf "%-8s %12s %10s %10s %14s\n" proxy "req/s" "p50 ms" "p99 ms" "cpu us/req"
    close_run nginx 18090 "${nginx_pids[@]}"
    close_run bare 18092 "$bare_pid"
    close_run parapet 18091 "$parapet_pid"
fi

# Memory: RSS added by idle keep-alive client connections, IDLE_SIZES of them. The
# clients come from 15,000-connection processes, each on its own loopback address
# (ports) and within its own open-file limit; each proxy needs one descriptor per
# connection and some to spare, so a size above the hard limit is not run: the
# largest size that fits (in thousands) stands in for it, and says so.
IDLE_SIZES=${IDLE_SIZES:-10000 50000}
IDLE_CHUNK=15000
# Every chunk comes from a loopback address of its own (127.0.N.M, N picked per run),
# so no client port is still in TIME-WAIT from an earlier chunk or run.
idle_net=$(($$ % 200 + 1)) idle_host=1
rss_kb() { local total=0 p; for p in "$@"; do total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$total"; }
idle_run() {
    local who=$1 port=$2 n=$3; shift 3
    local before after closed left chunk clients=() i=0 answered
    before=$(rss_kb "$@")
    for ((left = n; left > 0; left -= IDLE_CHUNK)); do
        chunk=$((left < IDLE_CHUNK ? left : IDLE_CHUNK)); i=$((i + 1)); idle_host=$((idle_host + 1))
        python3 bench/idle_clients.py "$port" "$chunk" "127.0.$idle_net.$idle_host" > "$OUT/idle.$who.$i" 2>&1 &
        clients+=($!)
    done
    for _ in $(seq 1 1200); do
        [ "$(cat "$OUT"/idle."$who".* | grep -c ready)" -ge "$i" ] && break; sleep 0.1
    done
    after=$(rss_kb "$@")
    answered=$(awk '/ready/ {s += $2} END {print s + 0}' "$OUT"/idle."$who".*)
    kill "${clients[@]}" 2>/dev/null || true; wait "${clients[@]}" 2>/dev/null || true
    rm -f "$OUT"/idle."$who".*
    sleep 5
    closed=$(rss_kb "$@")
    printf "%-8s %10s %12d kB %14.0f %12d kB %12d kB\n" "$who" "$answered" $((after - before)) \
        "$(awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { print (a - b) * 1024 / n }')" "$before" "$closed"
}
if want idle; then
    start_part idle
    for size in $IDLE_SIZES; do
        n=$size fits=$(( ($(ulimit -Hn) - 1000) / 1000 * 1000 ))
        echo
        if [ "$n" -gt "$fits" ]; then
            echo "($size connections need more descriptors than ulimit -Hn $(ulimit -Hn) allows: $fits instead)"
            n=$fits
        fi
        echo "Memory with $n idle keep-alive client connections"
        printf "%-8s %10s %15s %14s %15s %15s\n" proxy answered "RSS added" "bytes/conn" "RSS before" "5 s after close"
        idle_run nginx 18090 "$n" "${nginx_pids[@]}"
        idle_run bare 18092 "$n" "$bare_pid"
        idle_run parapet 18091 "$n" "$parapet_pid"
    done
fi

# Bad input: connections that send nothing, or a request line and then nothing, until
# client_header_timeout (10 s) closes them.
SILENT=${SILENT:-10000}
latency_ms() {
    local i
    for i in 1 2 3 4 5; do curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$1/"; done |
        sort -n | awk '{ t[NR] = $1 } END { printf "%.2f", t[3] * 1000 }'
}
if want silent; then
    start_part silent
    echo
    echo "Parapet with $SILENT connections that never send a head (half silent, half a request line)"
    quiet=$(latency_ms 18091) before=$(rss_kb "$parapet_pid")
    python3 bench/silent_clients.py 18091 "$SILENT" "127.0.$idle_net.250" > "$OUT/silent" 2>&1 & client=$!
    for _ in $(seq 1 600); do grep -q open "$OUT/silent" && break; sleep 0.1; done
    held=$(rss_kb "$parapet_pid") busy=$(latency_ms 18091)
    for _ in $(seq 1 700); do grep -q closed "$OUT/silent" && break; sleep 0.1; done
    sleep 5
    after=$(rss_kb "$parapet_pid")
    kill "$client" 2>/dev/null || true; wait "$client" 2>/dev/null || true
    echo "  RSS: $before kB before, $held kB with them open ($(( (held - before) * 1024 / SILENT )) B each), $after kB 5 s after they closed"
    echo "  a real client's GET (median of 5): ${quiet} ms alone, ${busy} ms beside them"
    echo "  $(grep closed "$OUT/silent" || echo "not all closed within 70 s")"
fi

# The pinned proxies are done with; the rest starts its own.
if [ -n "$pinned" ]; then
    kill "${nginx_pids[@]}" "$bare_pid" "$parapet_pid" 2>/dev/null || true
    sleep 1
fi

# The cache part, before scaling replaces the pinned origin (bench/cache.sh).
if want cache; then
    start_part cache
    cache_part
fi

# The TLS part, on the same pinned origin (bench/tls.sh).
if want tls; then
    start_part tls
    tls_part
fi

# Scaling: each proxy unpinned, with 1 and then 2 threads (nginx: worker processes),
# wrk with 2 threads, the origin with 2 workers; everything shares the 2 cores, as on
# a real 2-core machine, so 2 / 1 shows what a second thread buys there.
scale_rps() {
    local port=$1 out
    pin "0-$((cores - 1))" wrk -t2 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$port/" >/dev/null
    out=$(pin "0-$((cores - 1))" wrk -t2 -c"$((CONNECTIONS * 2))" -d"${DURATION}s" "http://127.0.0.1:$port/")
    echo "$out" | awk '/Requests\/sec/ { print $2 }'
}
scale() {
    local who=$1 threads=$2 pid
    case $who in
        nginx)
            sed "s/^worker_processes 1;/worker_processes $threads;/" bench/nginx-proxy.conf > "$OUT/nginx-scale.conf"
            nginx -c "$OUT/nginx-scale.conf" -p "$OUT" & pid=$!; wait_port 18090
            for _ in $(seq 1 "$SCALE_ROUNDS"); do scale_rps 18090; done | median
            ;;
        parapet)
            sed "s/^threads: 1$/threads: $threads/" "$PARAPET_CONF" > "$OUT/parapet-scale.yaml"
            RUST_LOG=error "$PARAPET" -c "$OUT/parapet-scale.yaml" & pid=$!; wait_port 18091
            for _ in $(seq 1 "$SCALE_ROUNDS"); do scale_rps 18091; done | median
            ;;
    esac
    kill "$pid"; wait "$pid" 2>/dev/null || true
    sleep 1
}
if want scaling && [ "$cores" -lt 2 ]; then
    echo "(scaling needs 2 cores)" >&2
elif want scaling; then
    start_part scaling
    # The origin gets both cores and two workers too, so that it is not the limit.
    kill "$origin_pid"; wait "$origin_pid" 2>/dev/null || true
    sed "s/^worker_processes 1;/worker_processes 2;/" bench/nginx-origin.conf > "$OUT/nginx-origin-scale.conf"
    nginx -c "$OUT/nginx-origin-scale.conf" -p "$OUT" & pids+=($!)
    wait_port 18081
    echo
    echo "Scaling: req/s unpinned on $cores cores, wrk -t2 -c$((CONNECTIONS * 2)), ${DURATION}s x $SCALE_ROUNDS rounds (medians)"
    printf "%-8s %12s %12s %8s\n" proxy "1 thread" "2 threads" "2 / 1"
    for who in nginx parapet; do
        one=$(scale $who 1); two=$(scale $who 2)
        printf "%-8s %12.0f %12.0f %8.2f\n" "$who" "$one" "$two" "$(awk -v a="$two" -v b="$one" 'BEGIN { print a / b }')"
    done
fi

# Allocations per request, from the counting build (bench-only: --features count-alloc).
alloc_run() {
    local who=$1 port=$2; shift 2
    local pid before after n
    rm -f "$OUT/allocs.$who"
    ALLOC_COUNT_FILE="$OUT/allocs.$who" RUST_LOG=error taskset -c "$PROXY_CPU" "$@" & pid=$!
    wait_port "$port"
    pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$port/" >/dev/null
    sleep 0.3; before=$(cat "$OUT/allocs.$who")
    n=$(pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$port/" | awk '/requests in/ {print $1}')
    sleep 0.3; after=$(cat "$OUT/allocs.$who")
    kill "$pid"; wait "$pid" 2>/dev/null || true
    awk -v who="$who" -v b="$before" -v a="$after" -v n="$n" 'BEGIN {
        split(b, x, " "); split(a, y, " ")
        printf "%-8s %10d %14.1f %16.1f\n", who, n, (y[1] - x[1]) / n, (y[2] - x[2]) / n }' | tee -a "$OUT/allocs"
}
if ! want allocations; then
    :
elif [ -x "$COUNTING/parapet" ] && [ -x "$COUNTING/examples/bare_pingora" ]; then
    start_part allocations
    echo
    echo "Allocations per request (counting build), ${DURATION}s each"
    printf "%-8s %10s %14s %16s\n" proxy requests allocations reallocations
    : > "$OUT/allocs"
    alloc_run bare 18092 "$COUNTING/examples/bare_pingora"
    alloc_run parapet 18091 "$COUNTING/parapet" -c "$PARAPET_CONF"
    echo "parapet's own: $(awk '$1 == "parapet" { p = $3 } $1 == "bare" { b = $3 } END { printf "%+.1f", p - b }' "$OUT/allocs") allocations per request beyond bare Pingora"
else
    echo "(no counting build in $COUNTING: make bench builds it)" >&2
fi
# The fleet (bench/fleet.sh): its own origin, edges, shields and Redis.
if want fleet; then
    start_part fleet
    PARAPET="$PARAPET" bench/fleet.sh
fi
start_part end
