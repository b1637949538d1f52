#!/usr/bin/env bash
# third_party/reapply.sh VERSION | DIR: re-create the vendored Pingora crates from a
# release and re-apply Parapet's patch series (third_party/patches/, in order) onto
# them, saying which patches no longer apply.
#
#   VERSION  a release in the cargo registry (cargo fetch it first), e.g. 0.9.1
#   DIR      a directory holding the crates' sources as pingora-core-VERSION/... or
#            pingora-core/... (a Pingora checkout)
#
# The copies replace third_party/<crate>/ in the work tree; nothing is committed.
# Afterwards: check the version of Cargo.toml's pingora dependency, build, run the
# tests each patch names in third_party/PATCHES.md, and commit the release as
# vendored first, then each patch on its own (or run this with the patches moved
# aside, commit, and `git am` them).
set -euo pipefail
cd "$(dirname "$0")/.."
from=${1:?usage: third_party/reapply.sh VERSION | DIR}
crates=(pingora-core pingora-proxy)

source_of() {
    local crate=$1 found
    if [ -d "$from" ]; then
        for found in "$from/$crate" "$from"/"$crate"-[0-9]*; do
            [ -f "$found/Cargo.toml" ] && { echo "$found"; return; }
        done
    else
        for found in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$crate-$from"; do
            [ -f "$found/Cargo.toml" ] && { echo "$found"; return; }
        done
    fi
    echo "no sources of $crate for '$from'" >&2
    exit 1
}

for crate in "${crates[@]}"; do
    src=$(source_of "$crate")
    rm -rf "third_party/$crate"
    cp -r "$src" "third_party/$crate"
    rm -f "third_party/$crate/.cargo-ok"
    echo "vendored $crate from $src"
done

failed=0
for patch in third_party/patches/*.patch; do
    if git apply --check "$patch" 2>/dev/null; then
        git apply "$patch"
        echo "applied          $(basename "$patch")"
    else
        echo "NO LONGER APPLIES $(basename "$patch")"
        failed=$((failed + 1))
    fi
done
[ "$failed" -eq 0 ] || { echo "$failed patch(es) to redo by hand" >&2; exit 1; }
