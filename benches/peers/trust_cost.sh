#!/usr/bin/env bash
# What signing and checking recovery points cost (issue 15): the release before it (OLD, no
# signatures, random nonces, a keyed manifest tag) and this tree (NEW: Ed25519 signatures, a
# signed blob table of sealed hashes, derived nonces), built from the same timing tools
# (examples/bundle.rs and examples/vault.rs, this tree's copies) and run alternately on the
# shared 4 GiB images, in the same run. Prints a TSV row per run and, per step, the median
# seconds of each build and their ratio.
#
#   python3 ../shared/bench/make_images.py --size 4G --data-dir /tmp/rcbench
#   DATA=/tmp/rcbench/4g WORK=/tmp/rcbench/trust ROUNDS=3 benches/peers/trust_cost.sh
#
# Steps: seed of base.img (1 MiB chunks); capture + ship of the 1% change (the 695 guest
# writes of changed.img); ingest of the base bundle into a new vault; keyless verify of that
# vault. Inputs are read from a warm page cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
DATA=${DATA:-/tmp/rcbench/4g}
WORK=${WORK:-/tmp/rcbench/trust}
ROUNDS=${ROUNDS:-3}
OLD=${OLD:-4ea3e35}
rm -rf "$WORK"
mkdir -p "$WORK"

python3 - "$DATA/manifest.json" "$WORK/writes.txt" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["changed"]
open(sys.argv[2], "w").write("".join(f"{o} {n}\n" for o, n, _ in m["write_list"]))
PY

# Both builds, from the same example sources.
git worktree add -f --detach "$WORK/old-tree" "$OLD" > /dev/null 2>&1
trap 'git -C "$root" worktree remove --force "$WORK/old-tree" > /dev/null 2>&1 || true' EXIT
cp examples/bundle.rs examples/vault.rs "$WORK/old-tree/examples/"
cp -r examples/support "$WORK/old-tree/examples/"
(cd "$WORK/old-tree" && CARGO_TARGET_DIR="$WORK/target-old" \
    cargo build --release --locked --example bundle --example vault >&2)
cargo build --release --locked --example bundle --example vault >&2
target=${CARGO_TARGET_DIR:-target}
declare -A bin_bundle=([old]="$WORK/target-old/release/examples/bundle" [new]="$target/release/examples/bundle")
declare -A bin_vault=([old]="$WORK/target-old/release/examples/vault" [new]="$target/release/examples/vault")

cat "$DATA/base.img" "$DATA/changed.img" > /dev/null
figure() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2"; }
printf 'round\tbuild\tstep\tseconds\n' | tee "$WORK/runs.tsv"
for round in $(seq 1 "$ROUNDS"); do
    for b in old new; do
        w="$WORK/$b"
        rm -rf "$w"
        mkdir -p "$w"
        sync
        "${bin_bundle[$b]}" seed "$DATA/base.img" "$w/seed" > "$w/out.txt"
        printf '%s\t%s\tseed\t%s\n' "$round" "$b" "$(figure seconds "$w/out.txt")" | tee -a "$WORK/runs.tsv"
        rm -rf "$w/seed"
        sync
        "${bin_bundle[$b]}" ship "$DATA/base.img" "$DATA/changed.img" "$WORK/writes.txt" "$w/ship" > "$w/out.txt"
        printf '%s\t%s\tcapture+ship 1%%\t%s\n' "$round" "$b" "$(figure seconds "$w/out.txt")" | tee -a "$WORK/runs.tsv"
        rm -rf "$w/ship"
        sync
        "${bin_vault[$b]}" seed "$DATA/base.img" "$w/v" "$w/vault" > /dev/null
        sync
        "${bin_vault[$b]}" ingest "$w/v" "$w/vault" > "$w/out.txt"
        printf '%s\t%s\tingest\t%s\n' "$round" "$b" "$(figure seconds "$w/out.txt")" | tee -a "$WORK/runs.tsv"
        "${bin_vault[$b]}" verify-keyless "$w/v" "$w/vault" > "$w/out.txt"
        printf '%s\t%s\tkeyless verify\t%s\n' "$round" "$b" "$(figure seconds "$w/out.txt")" | tee -a "$WORK/runs.tsv"
        rm -rf "$w"
    done
done
echo
python3 - "$WORK/runs.tsv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
steps = []
for r in rows:
    if r["step"] not in steps:
        steps.append(r["step"])
print("step\told median s\tnew median s\tnew / old")
for s in steps:
    med = {b: statistics.median(float(r["seconds"]) for r in rows if r["step"] == s and r["build"] == b) for b in ("old", "new")}
    print(f"{s}\t{med['old']:.3f}\t{med['new']:.3f}\t{med['new'] / med['old']:.3f}")
PY
