#!/usr/bin/env bash
# What signing and checking recovery points cost (issue 15): the release before it (OLD, no
# signatures, random nonces, a keyed manifest tag) and this tree (NEW: Ed25519 signatures, a
# signed blob table of sealed hashes, derived nonces), built from the same timing tools
# (examples/bundle.rs and examples/vault.rs, this tree's copies) and run alternately on the
# shared 4 GiB images, in the same run (the order of the two builds alternating from round to
# round). Prints a TSV row per run and, per step, the median wall seconds (as the tool times
# the step) and the median CPU seconds (user + system of the whole process, which also counts
# its small untimed parts, but not the waits for a shared disk) of each build, and the ratios.
#
#   apt-get install -y b3sum time
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
# The old build is kept between runs (it does not change).
OLD_TARGET=${OLD_TARGET:-$(dirname "$WORK")/target-old}
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
(cd "$WORK/old-tree" && CARGO_TARGET_DIR="$OLD_TARGET" \
    cargo build --release --locked --example bundle --example vault >&2)
cargo build --release --locked --example bundle --example vault >&2
target=${CARGO_TARGET_DIR:-target}
declare -A bin_bundle=([old]="$OLD_TARGET/release/examples/bundle" [new]="$target/release/examples/bundle")
declare -A bin_vault=([old]="$OLD_TARGET/release/examples/vault" [new]="$target/release/examples/vault")

cat "$DATA/base.img" "$DATA/changed.img" > /dev/null
figure() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$2"; }
# Runs a step, its figures to $w/out.txt, its CPU seconds to $w/cpu.txt.
run() { /usr/bin/time -f "%U %S" -o "$w/cpu.txt" "$@" > "$w/out.txt"; }
cpu() { awk '{print $1 + $2}' "$w/cpu.txt"; }
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$b" "$1" "$(figure seconds "$w/out.txt")" "$(cpu)" | tee -a "$WORK/runs.tsv"; }
printf 'round\tbuild\tstep\tseconds\tcpu_seconds\n' | tee "$WORK/runs.tsv"
for round in $(seq 1 "$ROUNDS"); do
    order="old new"
    [ $((round % 2)) -eq 0 ] && order="new old"
    for b in $order; do
        w="$WORK/$b"
        rm -rf "$w"
        mkdir -p "$w"
        sync
        run "${bin_bundle[$b]}" seed "$DATA/base.img" "$w/seed"
        row seed
        if [ "$b" = new ]; then
            # The floor of what signing adds to a seed: every sealed byte hashed once more
            # (the bundle is the sealed blobs and a little framing), on one thread.
            run b3sum --num-threads 1 $(find "$w/seed" -name '*.rcb')
            printf '%s\tlimit\tb3sum -t1 of the new bundle\t-\t%s\n' "$round" "$(cpu)" | tee -a "$WORK/runs.tsv"
        fi
        rm -rf "$w/seed"
        sync
        run "${bin_bundle[$b]}" ship "$DATA/base.img" "$DATA/changed.img" "$WORK/writes.txt" "$w/ship"
        row "capture+ship 1% (CPU: with an untimed seed)"
        rm -rf "$w/ship"
        sync
        "${bin_vault[$b]}" seed "$DATA/base.img" "$w/v" "$w/vault" > /dev/null
        sync
        run "${bin_vault[$b]}" ingest "$w/v" "$w/vault"
        row ingest
        run "${bin_vault[$b]}" verify-keyless "$w/v" "$w/vault"
        row "keyless verify"
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
print("step\told wall s\tnew wall s\tnew / old\told CPU s\tnew CPU s\tnew / old")
for s in steps:
    med = lambda b, f: statistics.median(float(r[f]) for r in rows if r["step"] == s and r["build"] == b)
    if s.startswith("b3sum"):
        c = statistics.median(float(r["cpu_seconds"]) for r in rows if r["step"] == s)
        print(f"{s}\t-\t-\t-\t-\t{c:.2f}\t-")
        continue
    w = (med("old", "seconds"), med("new", "seconds"))
    c = (med("old", "cpu_seconds"), med("new", "cpu_seconds"))
    print(f"{s}\t{w[0]:.3f}\t{w[1]:.3f}\t{w[1] / w[0]:.3f}\t{c[0]:.2f}\t{c[1]:.2f}\t{c[1] / c[0]:.3f}")
PY
