#!/usr/bin/env bash
# bench/disk_index.sh: how long the disk tier's start-up scan takes to index N small
# object files (default 1,000,000), page cache warm, and the resident set it adds.
# The files are only named and sized like object files: the scan reads names and
# lengths, never contents. Needs a release build (target/release/parapet).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
DIR=${DIR:-/tmp/parapet-bench/disk-index}
BIN=${PARAPET:-target/release/parapet}
OUT=/tmp/parapet-bench
mkdir -p "$OUT"

if [ "$(cat "$DIR/.count" 2>/dev/null || true)" != "$N" ]; then
    rm -rf "$DIR"
    python3 - "$DIR" "$N" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
for shard in range(256):
    os.makedirs(os.path.join(root, "%02x" % shard), exist_ok=True)
rng = random.Random(25)
body = b"x" * 200
for _ in range(n):
    name = "%032x" % rng.getrandbits(128)
    with open(os.path.join(root, name[:2], name), "wb") as f:
        f.write(body)
open(os.path.join(root, ".count"), "w").write(str(n))
PY
fi
# Warm the page cache for the directories (a second scan is what is measured).
find "$DIR" -type f | wc -l >/dev/null

cat > "$OUT/disk-index.yaml" <<YAML
listeners: [{address: "127.0.0.1:18095"}]
upstreams: {app: {backends: [{address: "127.0.0.1:18081"}]}}
routes: [{upstream: app, cache: true}]
cache: {max_size: 64MiB, disk: {path: $DIR, max_size: 1024GiB}}
YAML
RUST_LOG=info "$BIN" -c "$OUT/disk-index.yaml" 2> "$OUT/disk-index.log" &
pid=$!
trap 'kill -KILL $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
    grep -q "indexed in" "$OUT/disk-index.log" && break
    sleep 0.1
done
grep "indexed in" "$OUT/disk-index.log" | sed 's/.*cache disk tier: //'
echo "resident set after the scan: $(awk '/VmRSS/ { print $2, $3 }' "/proc/$pid/status")"
