# shellcheck shell=bash
# bench/tls.sh: the TLS and HTTP/2 part of `make bench` (sourced by bench/run.sh, not
# run; `make bench PARTS=tls` runs it alone). Parapet against nginx, both terminating
# TLS with the same ECDSA P-256 certificate (made here with openssl) in front of the
# pass-through origin, one worker each pinned to the proxy core, the load on the
# other, measured in pairs (both loaded at once: see paired in bench/lib.sh),
# TLS_ROUNDS rounds of DURATION, medians:
#
# 1. HTTPS with keep-alive (wrk, HTTP/1.1): CPU microseconds per request.
# 2. New TLS handshakes (wrk with Connection: close, so every request is a new TCP
#    connection and a full handshake: wrk does not resume sessions): handshakes per
#    second and CPU microseconds per handshake and its request.
# 3. HTTP/2 with h2load at 100 concurrent streams (4 connections x 100 streams):
#    CPU microseconds per request.
#
# Expects from run.sh: OUT, PROXY_CPU, LOAD_CPU, CONNECTIONS, DURATION, PARAPET,
# PARAPET_CONF, the pids array, bench/lib.sh and the origin on 18081. Starts nginx on
# 18443 (a copy of bench/nginx-proxy.conf) and Parapet on 18444 (a copy of
# PARAPET_CONF with a TLS listener), and stops them when done.
# Bounded: about 3 x TLS_ROUNDS x DURATION + ~10 seconds: 85 s with the defaults.

TLS_ROUNDS=${TLS_ROUNDS:-5}

tls_part() {
    local tnginx tparapet round b_first mode
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$OUT/tls.key" -out "$OUT/tls.pem" -days 2 -subj /CN=bench.test \
        -addext subjectAltName=DNS:bench.test 2>/dev/null
    sed -e "s#listen 127.0.0.1:18090 reuseport;#listen 127.0.0.1:18443 ssl http2 reuseport; ssl_certificate $OUT/tls.pem; ssl_certificate_key $OUT/tls.key; ssl_protocols TLSv1.2 TLSv1.3;#" \
        -e "s#nginx-proxy.pid#nginx-tls.pid#" -e "s#nginx-proxy.err#nginx-tls.err#" \
        bench/nginx-proxy.conf > "$OUT/nginx-tls.conf"
    sed -e "s#^  - address: 127.0.0.1:18091\$#  - address: 127.0.0.1:18444\n    tls: {certificates: [{cert: $OUT/tls.pem, key: $OUT/tls.key}]}#" \
        -e "s#127.0.0.1:19901#127.0.0.1:19944#" -e "s#/tmp/parapet-bench/access.log#$OUT/tls-access.log#" \
        "$PARAPET_CONF" > "$OUT/parapet-tls.yaml"
    taskset -c "$PROXY_CPU" nginx -c "$OUT/nginx-tls.conf" -p "$OUT" & pids+=($!)
    wait_port 18443
    tnginx=("$!" $(pgrep -P "$!"))
    # Errors to a file: h2load and wrk end their runs in the middle of streams.
    RUST_LOG=error taskset -c "$PROXY_CPU" "$PARAPET" -c "$OUT/parapet-tls.yaml" \
        2> "$OUT/tls-parapet.log" & pids+=($!)
    tparapet=$!
    wait_port 18444

    : > "$OUT/tls-results"
    for mode in keepalive handshake h2; do
        for round in $(seq 1 "$TLS_ROUNDS"); do
            b_first=$([ $((round % 2)) -eq 0 ] && echo yes || true)
            tls_paired "$mode" "$b_first" | awk -v m="$mode" '{ print m, $0 }' >> "$OUT/tls-results"
            echo "tls $mode round $round: $(tail -1 "$OUT/tls-results")" >&2
        done
    done
    kill "${tnginx[@]}" "$tparapet" 2>/dev/null || true

    echo
    echo "TLS (ECDSA P-256) and HTTP/2, in pairs, ${DURATION}s x $TLS_ROUNDS rounds (medians)"
    printf "%-44s %10s %10s %14s\n" "" nginx parapet "parapet/nginx"
    tls_row keepalive "HTTPS keep-alive, CPU us/request"
    tls_row handshake "new handshake per request, CPU us/request"
    tls_rate handshake "new handshakes per second"
    tls_row h2 "HTTP/2, 100 streams (h2load), CPU us/request"
}

# tls_paired MODE B_FIRST -> "nginx_us parapet_us nginx_rps parapet_rps"
tls_paired() {
    local mode=$1 b_first=$2 a0 b0 a1 b1 load_a load_b
    a0=$(tree_ticks "${tnginx[@]}"); b0=$(tree_ticks "$tparapet")
    if [ -n "$b_first" ]; then
        tls_load "$mode" 18444 b & load_b=$!; tls_load "$mode" 18443 a & load_a=$!
    else
        tls_load "$mode" 18443 a & load_a=$!; tls_load "$mode" 18444 b & load_b=$!
    fi
    wait "$load_a" "$load_b"
    a1=$(tree_ticks "${tnginx[@]}"); b1=$(tree_ticks "$tparapet")
    awk -v ta=$((a1 - a0)) -v tb=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" \
        -v na="$(tls_count "$mode" a)" -v nb="$(tls_count "$mode" b)" -v d="$DURATION" \
        'BEGIN { printf "%.2f %.2f %.0f %.0f\n", ta / hz * 1e6 / na, tb / hz * 1e6 / nb, na / d, nb / d }'
}

tls_load() {
    local mode=$1 port=$2 side=$3 url="https://127.0.0.1:$2/"
    case $mode in
        keepalive) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$url" ;;
        handshake) taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" -H "Connection: close" "$url" ;;
        h2) taskset -c "$LOAD_CPU" h2load -t1 -c4 -m100 -D "$DURATION" "$url" ;;
    esac > "$OUT/tls-load.$side" 2>&1
}

tls_count() {
    case $1 in
        h2) awk '/^requests:/ { print $8 }' "$OUT/tls-load.$2" ;;
        *) awk '/requests in/ { print $1 }' "$OUT/tls-load.$2" ;;
    esac
}

tls_row() {
    awk -v m="$1" '$1 == m { print $2, $3, $3 / $2 }' "$OUT/tls-results" |
        sort -k3 -g | awk -v label="$2" '{ a[NR] = $0 } END { split(a[int((NR + 1) / 2)], x, " ");
            printf "%-44s %10.1f %10.1f %14.3f\n", label, x[1], x[2], x[3] }'
}

tls_rate() {
    awk -v m="$1" '$1 == m { print $4, $5, $5 / $4 }' "$OUT/tls-results" |
        sort -k3 -g | awk -v label="$2" '{ a[NR] = $0 } END { split(a[int((NR + 1) / 2)], x, " ");
            printf "%-44s %10.0f %10.0f %14.3f\n", label, x[1], x[2], x[3] }'
}
