# shellcheck shell=bash
# bench/cache.sh: the cache part of `make bench` (sourced by bench/run.sh, not run;
# `PARTS=cache bench/run.sh` runs it alone). Parapet's cache against nginx's
# proxy_cache, both with one worker pinned to the proxy core, the load on the other:
#
# 1. Hit cost: CPU microseconds per request of a cache hit, for a 1 KiB and a 100 KiB
#    object, measured in pairs (Parapet and nginx on the proxy core, loaded at once:
#    see paired in bench/lib.sh), CACHE_ROUNDS rounds of DURATION, medians. Both
#    caches are warmed and checked to answer with a hit first, and the origin's
#    access log shows how many requests still reached it during the rounds.
# 2. Origin offload: bench/zipf.py sends ZIPF_REQUESTS requests for /obj/<k>, k drawn
#    from Zipf(1.0) over 10,000 keys, to each proxy in turn, with each cache sized for
#    1,000 of the (3 KiB) objects. Two passes with different seeds: the first starts
#    cold, the second is the steady state. The share of requests that reached the
#    origin is counted in the origin's access log, next to the best any cache of
#    1,000 objects can do.
# 3. The cost of the cache on a route that does not cache: bench/parapet.yaml against
#    itself with a top-level `cache:` section (no route caching: the store is not even
#    built), and with a caching route on another host (the store is live), in pairs
#    like bench/compare.sh, PAIR_ROUNDS rounds; and against a copy of itself, the null
#    pair, to show what the pairing alone gives.
#
# Expects from run.sh: OUT, PROXY_CPU, LOAD_CPU, CONNECTIONS, DURATION, PAIR_ROUNDS,
# PARAPET, PARAPET_CONF, the pids array (killed on exit), bench/lib.sh, and the
# pass-through origin (bench/nginx-origin.conf) on 18081. Starts its own origin
# (bench/nginx-cache-origin.conf, 18082), nginx (bench/nginx-cache-proxy.conf, 18096)
# and Parapets (bench/parapet-cache.yaml, 18097; pass-through copies on 18098-18101),
# and stops them when done. Files under /tmp/parapet-bench (cache-*, zipf.out, www/,
# nginx-cache/); Parapet's log in cache-parapet.log.
# To repeat 3. with more rounds: { cat bench/parapet.yaml; printf 'cache:\n  max_size:
# 64MiB\n'; } > /tmp/with-cache.yaml; ROUNDS=9 bench/compare.sh bench/parapet.yaml
# /tmp/with-cache.yaml
# Bounded: about 2 x (3 + CACHE_ROUNDS x DURATION) + 4 x (ZIPF_REQUESTS / ~6,000 per
# second, at most ZIPF_MAX_SECONDS each) + 3 x PAIR_ROUNDS x DURATION + ~15 seconds:
# about 3 minutes with the defaults.

CACHE_ROUNDS=${CACHE_ROUNDS:-5}
ZIPF_REQUESTS=${ZIPF_REQUESTS:-50000}
ZIPF_CONNECTIONS=${ZIPF_CONNECTIONS:-16}
ZIPF_MAX_SECONDS=${ZIPF_MAX_SECONDS:-45}
ZIPF_KEYS=10000
ZIPF_OBJECTS=1000
ZIPF_SEEDS="1 2"

cache_part() {
    local corigin cnginx cparapet size path out b_first round n0 n1 k who name port pid

    # The bodies the cache origin serves, and an empty nginx cache (nginx would load
    # what a previous run left on disk).
    mkdir -p "$OUT/www/c"
    head -c 1024 /dev/zero | tr '\0' a > "$OUT/www/c/1k"
    head -c 102400 /dev/zero | tr '\0' b > "$OUT/www/c/100k"
    head -c 3072 /dev/zero | tr '\0' c > "$OUT/www/obj"
    rm -rf "$OUT/nginx-cache"; mkdir -p "$OUT/nginx-cache"
    : > "$OUT/cache-origin.log"; : > "$OUT/cache-access.log"; : > "$OUT/cache-nginx-access.log"
    # Parapet's errors go to a file: at the end of each round wrk closes connections
    # in the middle of 100 KiB bodies, and Pingora logs each ("Broken pipe",
    # "Connection reset by peer").
    : > "$OUT/cache-parapet.log"

    taskset -c "$LOAD_CPU" nginx -c "$PWD/bench/nginx-cache-origin.conf" -p "$OUT" & pids+=($!)
    corigin=$!
    wait_port 18082
    taskset -c "$PROXY_CPU" nginx -c "$PWD/bench/nginx-cache-proxy.conf" -p "$OUT" & pids+=($!)
    cnginx=$!
    wait_port 18096
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c bench/parapet-cache.yaml 2>> "$OUT/cache-parapet.log" & pids+=($!)
    cparapet=$!
    wait_port 18097
    # The master, the worker and the cache manager (not the cache loader, which exits
    # a minute after the start).
    local -a cnginx_pids
    for _ in $(seq 1 50); do
        read -r -a cnginx_pids <<< "$cnginx $(ps -o pid=,args= --ppid "$cnginx" | awk '/worker|manager/ { print $1 }' | tr '\n' ' ')"
        [ "${#cnginx_pids[@]}" -ge 3 ] && break
        sleep 0.1
    done
    [ "${#cnginx_pids[@]}" -ge 3 ] || echo "nginx cache proxy: only found processes ${cnginx_pids[*]}" >&2

    # 1. Hit cost.
    : > "$OUT/cache-hits"
    for size in 1k 100k; do
        path=/c/$size
        for _ in 1 2 3; do
            curl -s -o /dev/null "http://127.0.0.1:18096$path"
            curl -s -o /dev/null "http://127.0.0.1:18097$path"
        done
        cache_verdict nginx 18096 "$path" X-Cache-Status '^HIT$'
        cache_verdict parapet 18097 "$path" Cache-Status '; *hit(;|$)'
        pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:18096$path" >/dev/null
        pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:18097$path" >/dev/null
        n0=$(origin_count /c/)
        for round in $(seq 1 "$CACHE_ROUNDS"); do
            b_first=$([ $((round % 2)) -eq 0 ] && echo yes || true)
            out=$(PAIR_PATH=$path paired 18096 "${cnginx_pids[*]}" 18097 "$cparapet" "$b_first")
            echo "$size $out" | awk '{ printf "%s %.3f %s %s\n", $1, $3 / $2, $2, $3 }' >> "$OUT/cache-hits"
            echo "cache hit $size round $round: parapet/nginx $(tail -1 "$OUT/cache-hits" | cut -d' ' -f2-)" >&2
        done
        n1=$(origin_count /c/)
        echo "$size origin $((n1 - n0))" >> "$OUT/cache-hits"
    done

    # 2. Origin offload under Zipf(1.0). Parapet gets a fresh cache of 4000KiB: 1,000
    # objects of 3 KiB, charged 4 KiB each (see bench/nginx-cache-proxy.conf).
    kill "$cparapet"; wait "$cparapet" 2>/dev/null || true
    sed 's/^  max_size: .*/  max_size: 4000KiB/' bench/parapet-cache.yaml > "$OUT/parapet-zipf.yaml"
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$OUT/parapet-zipf.yaml" 2>> "$OUT/cache-parapet.log" & pids+=($!)
    cparapet=$!
    wait_port 18097
    : > "$OUT/cache-zipf"
    for who in parapet nginx; do
        for k in $ZIPF_SEEDS; do zipf_pass "$who" "$k"; done
    done
    python3 bench/zipf.py bound "$ZIPF_OBJECTS" "${ZIPF_SEEDS// /,}" --requests "$ZIPF_REQUESTS" \
        --keys "$ZIPF_KEYS" > "$OUT/cache-bound"
    kill "$cparapet" "$cnginx" "$corigin"
    wait "$cparapet" "$cnginx" "$corigin" 2>/dev/null || true

    # 3. A route without cache: bench/parapet.yaml with a route for another host (A)
    # against a copy of itself (Z,
    # the null pair: what the pairing alone shows), against itself with a cache
    # section (B), and with a cache section and a caching route for another host (C).
    local pa pb pc pz
    # Every copy has the same routes, the bench's plus one for another host before
    # the catch-all, so that only the cache differs: C caches on that route.
    with_route() {
        awk -v cache="$1" '/^  - host: "\*"$/ { print "  - host: \"cached.example.com\""; print "    upstream: app"; if (cache) print "    cache: true" } { print }' "$PARAPET_CONF"
    }
    with_route "" | pass_conf a 18098 19908
    with_route "" | pass_conf z 18101 19911
    { with_route ""; printf 'cache:\n  max_size: 64MiB\n  max_object_size: 1MiB\n'; } | pass_conf b 18099 19909
    { with_route yes; printf 'cache:\n  max_size: 64MiB\n  max_object_size: 1MiB\n'; } | pass_conf c 18100 19910
    grep -q 'cache: true' "$OUT/cache-pass-c.yaml" || { echo "no caching route added to $PARAPET_CONF" >&2; return 1; }
    for k in a b c z; do "$PARAPET" -t -c "$OUT/cache-pass-$k.yaml" >/dev/null || return 1; done
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$OUT/cache-pass-a.yaml" 2>> "$OUT/cache-parapet.log" & pids+=($!)
    pa=$!
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$OUT/cache-pass-b.yaml" 2>> "$OUT/cache-parapet.log" & pids+=($!)
    pb=$!
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$OUT/cache-pass-c.yaml" 2>> "$OUT/cache-parapet.log" & pids+=($!)
    pc=$!
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$OUT/cache-pass-z.yaml" 2>> "$OUT/cache-parapet.log" & pids+=($!)
    pz=$!
    wait_port 18098; wait_port 18099; wait_port 18100; wait_port 18101
    for k in 18098 18099 18100 18101; do pin "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d1s "http://127.0.0.1:$k/" >/dev/null; done
    : > "$OUT/cache-pass"
    for round in $(seq 1 "$PAIR_ROUNDS"); do
        b_first=$([ $((round % 2)) -eq 0 ] && echo yes || true)
        for k in z:18101:$pz b:18099:$pb c:18100:$pc; do
            IFS=: read -r name port pid <<< "$k"
            out=$(paired 18098 "$pa" "$port" "$pid" "$b_first")
            echo "$name $out" | awk '{ printf "%s %.3f %s %s\n", $1, $3 / $2, $2, $3 }' >> "$OUT/cache-pass"
        done
        echo "cache pass-through round $round: $(tail -3 "$OUT/cache-pass" | tr '\n' ' ')" >&2
    done
    kill "$pa" "$pb" "$pc" "$pz"; wait "$pa" "$pb" "$pc" "$pz" 2>/dev/null || true
    if grep -v -e 'Broken pipe' -e 'Connection reset by peer' "$OUT/cache-parapet.log" | grep -q .; then
        echo "Parapet logged errors other than clients closing mid-body: see $OUT/cache-parapet.log" >&2
    fi

    cache_report
}

# cache_verdict WHO PORT PATH HEADER REGEX: fails unless PATH's answer is a hit.
cache_verdict() {
    local value
    value=$(curl -s -o /dev/null -D - "http://127.0.0.1:$2$3" | tr -d '\r' |
        awk -v h="$4" 'index(tolower($0), tolower(h) ":") == 1 { sub(/^[^:]*: */, ""); print }')
    if ! echo "$value" | grep -Eqi "$5"; then
        echo "$1 $3: not a cache hit after warming ($4: '${value}')" >&2
        return 1
    fi
    echo "$1 $3 warm: $4: $value" >&2
}

# Requests for PREFIX... that reached the cache origin so far.
origin_count() { grep -c "^$1" "$OUT/cache-origin.log" || true; }

# pass_conf NAME PORT ADMIN_PORT < CONF: the configuration with its own port and files.
pass_conf() {
    sed -e "s/127\.0\.0\.1:18091/127.0.0.1:$2/" -e "s/127\.0\.0\.1:19901/127.0.0.1:$3/" \
        -e "s#/tmp/parapet-bench/#$OUT/cache-pass-$1-#g" > "$OUT/cache-pass-$1.yaml"
}

# How many objects a proxy's Zipf cache holds now.
zipf_objects() {
    case $1 in
        parapet) { curl -s --max-time 1 http://127.0.0.1:19907/metrics || true; } | awk '$1 == "parapet_cache_objects" { print $2 }' ;;
        nginx) find "$OUT/nginx-cache/zipf" -type f ! -name '*.*' | wc -l ;;  # not temporary files
    esac
}

# zipf_pass WHO SEED: one pass of the Zipf client; appends
# "who seed sent ok errors hits collapsed seconds rps origin max_objects mean_objects",
# the objects sampled every half second.
zipf_pass() {
    local who=$1 seed=$2 port header client n0 n1 line max_held=0 held sum=0 samples=0
    case $who in parapet) port=18097 header=Cache-Status ;; nginx) port=18096 header=X-Cache-Status ;; esac
    n0=$(origin_count /obj/)
    pin "$LOAD_CPU" python3 bench/zipf.py run "$port" "$seed" --requests "$ZIPF_REQUESTS" \
        --keys "$ZIPF_KEYS" --connections "$ZIPF_CONNECTIONS" --max-seconds "$ZIPF_MAX_SECONDS" \
        --header "$header" > "$OUT/zipf.out" & client=$!
    # Sample what the cache holds while the client runs (it stops by itself).
    while kill -0 "$client" 2>/dev/null; do
        held=$(zipf_objects "$who"); held=${held:-0}
        [ "$held" -gt "$max_held" ] && max_held=$held
        sum=$((sum + held)); samples=$((samples + 1))
        sleep 0.5
    done
    wait "$client"
    sleep 0.2
    n1=$(origin_count /obj/)
    held=$((sum / (samples > 0 ? samples : 1)))
    line=$(tr '=' ' ' < "$OUT/zipf.out" | awk '{ print $2, $4, $6, $8, $10, $12, $14 }')
    echo "$who $seed $line $((n1 - n0)) $max_held $held" >> "$OUT/cache-zipf"
    echo "zipf $who seed $seed: $(cat "$OUT/zipf.out"); origin requests $((n1 - n0)); objects held: up to $max_held, $held on average ($samples samples)" >&2
}

cache_report() {
    local size k
    hits_col() { awk -v s="$1" -v c="$2" '$1 == s && $2 != "origin" { print $c }' "$OUT/cache-hits" | median; }
    hits_range() { awk -v s="$1" '$1 == s && $2 != "origin" { print $2 }' "$OUT/cache-hits" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.2f-%.2f", lo, hi }'; }
    echo
    echo "Cache hits in pairs (Parapet and nginx proxy_cache on core $PROXY_CPU at once), $CONNECTIONS connections, ${DURATION}s x $CACHE_ROUNDS rounds (medians)"
    printf "%-8s %14s %12s   %-28s %s\n" object parapet/nginx range "CPU us/req of each" "origin requests in the rounds"
    for size in 1k 100k; do
        printf "%-8s %14.2f %12s   %-28s %s\n" "${size/k/ KiB}" "$(hits_col $size 2)" "$(hits_range $size)" \
            "$(printf "parapet %.2f, nginx %.2f" "$(hits_col $size 4)" "$(hits_col $size 3)")" \
            "$(awk -v s="$size" '$1 == s && $2 == "origin" { print $3 }' "$OUT/cache-hits")"
    done

    echo
    echo "Origin offload, Zipf(1.0) over $ZIPF_KEYS keys, caches sized for about $ZIPF_OBJECTS objects of 3 KiB (Parapet"
    echo "max_size 4000KiB: 1,000; nginx keys_zone 132k: 991), $ZIPF_REQUESTS requests a pass over $ZIPF_CONNECTIONS connections;"
    echo "pass 1 starts cold, pass 2 follows it (warm); to origin: the origin's access log; objects: sampled every 0.5 s"
    printf "%-8s %-9s %9s %7s %10s %9s %9s %10s %15s %9s\n" proxy pass answered errors "to origin" "origin %" "hits %" collapsed "objects max/mean" "seconds"
    awk '{ printf "%-8s %-9s %9d %7d %10d %8.1f%% %8.1f%% %10s %9d/%-5d %9.1f\n", $1, $2 == 1 ? "1 (cold)" : $2 " (warm)",
               $4, $5, $10, 100 * $10 / $4, 100 * $6 / $4, $1 == "nginx" ? "-" : $7, $11, $12, $8 }' "$OUT/cache-zipf"
    tr '=,' '  ' < "$OUT/cache-bound" | awk -v n="$ZIPF_OBJECTS" -v keys="$ZIPF_KEYS" '{
        printf "best possible with %d objects: at least %.1f%% to the origin (1 - H(%d)/H(%d); at most %.1f%% hits)\n", n, 100 * $4, n, keys, 100 * $2
        printf "Belady (offline optimum) on these very sequences: %.1f%% (pass 1), %.1f%% (pass 2) to the origin\n", 100 * $6, 100 * $7 }'

    echo
    echo "A route without cache: bench/parapet.yaml plus a route for another host (A) against B,"
    echo "in pairs on core $PROXY_CPU, ${DURATION}s x $PAIR_ROUNDS rounds (medians)"
    printf "%-56s %6s %12s   %s\n" B B/A range "CPU us/req of each"
    for k in z b c; do
        printf "%-56s %6.3f %12s   A %.2f, B %.2f\n" \
            "$(case $k in z) echo "A again (null pair)" ;; b) echo "A + a cache: section (no route caches)" ;;
                          c) echo "A + a cache: section, the other host's route caching" ;; esac)" \
            "$(awk -v k=$k '$1 == k { print $2 }' "$OUT/cache-pass" | median)" \
            "$(awk -v k=$k '$1 == k { print $2 }' "$OUT/cache-pass" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.3f-%.3f", lo, hi }')" \
            "$(awk -v k=$k '$1 == k { print $3 }' "$OUT/cache-pass" | median)" \
            "$(awk -v k=$k '$1 == k { print $4 }' "$OUT/cache-pass" | median)"
    done
}
