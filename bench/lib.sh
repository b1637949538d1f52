# shellcheck shell=bash
# bench/lib.sh: helpers shared by bench/run.sh and bench/compare.sh (sourced, not run).
# Expects OUT, CONNECTIONS, DURATION and LOAD_CPU to be set by the caller.

# Backgrounded processes are started with taskset directly (not through this
# function) so that $! is the process itself.
pin() { local cpu=$1; shift; taskset -c "$cpu" "$@"; }

wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 never opened" >&2; return 1
}

# CPU ticks (utime+stime) of a process and its threads; of several processes.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tree_ticks() {
    local total=0 p
    for p in "$@"; do total=$((total + $(ticks "$p"))); done
    echo "$total"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# paired PORT_A "PIDS_A" PORT_B "PIDS_B" [b_first] -> "us_a us_b": CPU microseconds per
# request of two proxies pinned to the same core and loaded at the same time, one wrk
# each on the load core. Whatever slows the core down in that window (a neighbour on
# the host, frequency, the other core's load) slows both, so their ratio holds steady
# where two runs one after the other can differ by a third on a shared machine. The
# wrk started first gets a small head start; callers alternate it with b_first.
# Both wrk ask for PAIR_PATH (default /).
paired_load() { taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "http://127.0.0.1:$1${PAIR_PATH:-/}" > "$OUT/paired.$2"; }
paired() {
    local port_a=$1 port_b=$3 b_first=${5:-}
    local -a pids_a pids_b
    read -r -a pids_a <<< "$2"
    read -r -a pids_b <<< "$4"
    local a0 b0 a1 b1 load_a load_b
    a0=$(tree_ticks "${pids_a[@]}"); b0=$(tree_ticks "${pids_b[@]}")
    if [ -n "$b_first" ]; then
        paired_load "$port_b" b & load_b=$!
        paired_load "$port_a" a & load_a=$!
    else
        paired_load "$port_a" a & load_a=$!
        paired_load "$port_b" b & load_b=$!
    fi
    wait "$load_a" "$load_b"
    a1=$(tree_ticks "${pids_a[@]}"); b1=$(tree_ticks "${pids_b[@]}")
    awk -v ta=$((a1 - a0)) -v tb=$((b1 - b0)) -v hz="$(getconf CLK_TCK)" \
        -v na="$(awk '/requests in/ {print $1}' "$OUT/paired.a")" \
        -v nb="$(awk '/requests in/ {print $1}' "$OUT/paired.b")" \
        'BEGIN { printf "%.2f %.2f\n", ta / hz * 1e6 / na, tb / hz * 1e6 / nb }'
}
