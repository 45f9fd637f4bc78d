#!/usr/bin/env bash
# Retention beside restic, in the same run: plan + prune + GC of a vault of N points (30
# seconds apart: N = 2000 is about 17 hours at the fastest policy) beside `restic forget
# --prune` on a repository of the same history (a snapshot of the same disk after each point's
# writes, dated like the point). Prints a TSV row per step: seconds, detail.
#
#   apt-get install -y restic time
#   WORK=/tmp/rcbench/retention N=2000 [RESTIC_CACHE=/tmp/rcbench/cache] benches/peers/retention.sh
#
# The chain is that of benches/support/retention_chain.rs: a 32 MiB disk, four 4 KiB writes a
# point (two into a hot region), an app-consistent point every 2 hours. Policies, as close as
# the tools allow: replicore keeps every point of the last 4 hours, the newest point of each of
# 12 hours past that, app-consistent points every 2 hours for another 4 hours, the newest
# point; restic keeps every snapshot within 4 hours and the newest of each of the last 16 hours
# (`--keep-within 4h --keep-hourly 16`), then prunes its repository (`--prune`, default
# `--max-unused 5%`). Both trees are on the same file system and synced before each timed step.
# Also timed: replicore's prune of the same vault at N/2 points, for the growth.
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${WORK:-/tmp/rcbench/retention}
N=${N:-2000}
rm -rf "$WORK"
mkdir -p "$WORK"
cargo build --release --locked --example retention >&2
bin=${CARGO_TARGET_DIR:-target}/release/examples/retention
export RESTIC_PASSWORD=bench-password-not-secret
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$WORK/out.txt"; }
timed() {
    sync
    /usr/bin/time -f "%e	%M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1
    cat "$WORK/time.txt"
}

printf 'step\ttool\tseconds\tdetail\n'
"$bin" build "$N" "$WORK/rc" > "$WORK/out.txt"
printf 'build\treplicore seed + ship + ingest of %s points\t%s\t\n' "$N" "$(field seconds)"
half=$((N / 2))
"$bin" build "$half" "$WORK/rc-half" > /dev/null

# restic's repository of the same history takes about a second a snapshot to build: with
# RESTIC_CACHE=DIR it is built once into DIR/restic-N and copied from there on later runs (the
# timed forget --prune always works on a fresh copy).
cached=${RESTIC_CACHE:+$RESTIC_CACHE/restic-$N}
if [ -n "$cached" ] && [ -d "$cached" ]; then
    cp -a "$cached" "$WORK/restic"
    printf 'build\trestic repository of %s snapshots, from %s\t-\t\n' "$((N + 1))" "$cached"
else
    restic init -q --repo "$WORK/restic" > /dev/null
    start=$(date +%s.%N)
    for i in $(seq 0 "$N"); do
        t=$("$bin" stage "$WORK" "$i")
        (cd "$WORK/stage" && restic backup -q --repo "$WORK/restic" --time "$t" disk.img > /dev/null)
    done
    printf 'build\trestic backup x %s\t%s\t\n' "$((N + 1))" "$(python3 -c "import time; print(round(time.time() - $start, 1))")"
    if [ -n "$cached" ]; then
        mkdir -p "$RESTIC_CACHE"
        cp -a "$WORK/restic" "$cached"
    fi
fi

read -r s m < <(timed "$bin" prune "$N" "$WORK/rc")
rc=$(field seconds)
printf 'prune\treplicore plan + prune + gc (%s points)\t%s\t%s\n' "$N" "$rc" \
    "$(tr '\n' ' ' < "$WORK/out.txt")"
read -r s m < <(timed "$bin" prune "$half" "$WORK/rc-half")
printf 'prune\treplicore plan + prune + gc (%s points)\t%s\t%s\n' "$half" "$(field seconds)" \
    "$(tr '\n' ' ' < "$WORK/out.txt")"
# restic forget decides by the newest snapshot's time, not the clock: it is the same instant.
read -r s m < <(timed restic forget -q --repo "$WORK/restic" --keep-within 4h --keep-hourly 16 --prune)
printf 'prune\trestic forget --keep-within 4h --keep-hourly 16 --prune\t%s\t%s snapshots left\n' "$s" \
    "$(restic snapshots -q --repo "$WORK/restic" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
python3 -c "print('ratio\trestic / replicore\t%.1f\t' % ($s / $rc))"
rm -rf "$WORK"
