#!/usr/bin/env bash
# Scale (issue 18), through the command line: each step's wall time and peak anonymous memory
# (RssAnon, sampled by benches/peers/peakmem.py) on a 1 TiB sparse disk holding 8 GiB of data
# (one 1 MiB run every 128 MiB, half random, half text), and, in the same run, the seed's
# throughput on the shared 4 GiB image beside the 1 TiB disk's.
#
#   python3 ../shared/bench/make_images.py --size 4G --data-dir /tmp/rcbench   # base.img
#   DATA=/tmp/rcbench/4g WORK=/tmp/rcbench/scale benches/peers/scale.sh
#
# Needs about 30 GB free under WORK. Prints one TSV row per step: step, seconds, peak MiB, and
# a note. Every command that opens the passphrase-protected key file spends 64 MiB on argon2id
# for an instant; that is in its peak.
#
# Then long chains and many groups: examples/scale_vault.rs at POINTS + GROUPS and at ten
# times both (default 10,000 + 100 and 100,000 + 1,000; about 20 minutes), each step's time
# side by side with the growth factor. SIZE (default 1T) sets the sparse disk's size (its data
# stays 8 GiB, spread evenly); PART=disk or PART=vault runs one half.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/rcbench/4g}
WORK=${WORK:-/tmp/rcbench/scale}
SIZE=${SIZE:-1T}
PART=${PART:-all}
POINTS=${POINTS:-10000}
GROUPS_=${GROUPS_:-100}
cargo build --release --locked -q
cargo build --release --locked -q --example scale_vault
target=${CARGO_TARGET_DIR:-$(pwd)/target}/release
bin=$target/replicore
mem="python3 benches/peers/peakmem.py"
export REPLICORE_PASSPHRASE=bench ERRF="$WORK/last.err"
rm -rf "$WORK"
mkdir -p "$WORK"
w=$WORK

# What an operator runs on the vault the example left in $1 (its long group about $2 points
# after the example's prune), each in its own process: time and peak anonymous memory (the
# example's figures are the resident peak of one process that ran every step). The prune
# keeps the newest half again.
cli_rows() {
    local v=$1/vault keep=$(($2 / 2)) far=2100-01-01T00:00:00Z
    local steps=(
        "command line: vault points --json|vault points $v --group long --json"
        "command line: vault prune --dry-run|vault prune $v --window 1 --keep-last $keep --now $far --dry-run"
        "command line: vault prune|vault prune $v --window 1 --keep-last $keep --now $far"
        "command line: vault gc|vault gc $v"
        "command line: vault verify|vault verify $v"
    )
    for s in "${steps[@]}"; do
        # shellcheck disable=SC2086
        $mem "${s%%|*}" "$bin" ${s#*|} |
            awk -F'\t' '{ print $1 "\t" $2; print $1 ": peak anonymous MiB\t" $3 }'
    done
}

# Long chains and many groups: both sizes, then one row per step with the growth for 10x.
vault_part() {
    "$target/examples/scale_vault" "$POINTS" "$GROUPS_" "$w/small" > "$w/small.tsv"
    cli_rows "$w/small" $((POINTS / 2)) >> "$w/small.tsv"
    "$target/examples/scale_vault" $((POINTS * 10)) $((GROUPS_ * 10)) "$w/large" > "$w/large.tsv"
    cli_rows "$w/large" $((POINTS * 5)) >> "$w/large.tsv"
    python3 - "$w/small.tsv" "$w/large.tsv" "$POINTS" "$GROUPS_" <<'PY'
import sys
small = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
large = [l.rstrip("\n").split("\t") for l in open(sys.argv[2])]
p, g = int(sys.argv[3]), int(sys.argv[4])
print(f"step\t{p:,} points + {g:,} groups\t{p * 10:,} + {g * 10:,}\tgrowth for 10x")
for (step, a), (_, b) in zip(small, large):
    step = step.split(" (")[0] if step.startswith("build") else step
    try:
        print(f"{step}\t{a}\t{b}\t{float(b) / float(a):.1f}x")
    except (ValueError, ZeroDivisionError):
        print(f"{step}\t{a}\t{b}\t")
PY
}
if [ "$PART" = vault ]; then vault_part; [ -n "${KEEP:-}" ] || rm -rf "$w"; exit 0; fi

# The sparse disk (1 TiB unless SIZE says otherwise): 8192 runs of 1 MiB spread evenly (one
# every 128 MiB on 1 TiB), even ones random, odd text.
truncate -s "$SIZE" "$w/disk.img"
python3 - "$w/disk.img" <<'PY'
import os, sys
path = sys.argv[1]
text = (b"replicore scale bench: a line of guest text, " * 24000)[: 1 << 20]
with open(path, "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    step = size // 8192 // (1 << 20) * (1 << 20)
    for i in range(8192):
        f.seek(i * step)
        f.write(os.urandom(1 << 20) if i % 2 == 0 else text)
PY
disk_size=$(stat -c %s "$w/disk.img")
data=$((8192 << 20))
"$bin" keygen --out "$w/k.rckey" > /dev/null 2>&1
printf 'step\tseconds\tpeak MiB\tnote\n'
row() { printf '%s\t%s\n' "$1" "$2"; }
# Empties the page cache (as root), so that a step and its limit both read from the device.
cold() { sync; if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi; }

# Seed: the 1 TiB disk and, in the same run, the 4 GiB image.
r=$($mem "seed $SIZE" "$bin" seed --key "$w/k.rckey" --group big --disk "disk=$w/disk.img" \
    --log "$w/big.rclog" --out "$w/base.rcb")
big_s=$(cut -f2 <<< "$r")
cat "$DATA/base.img" > /dev/null
r4=$($mem "seed 4 GiB image" "$bin" seed --key "$w/k.rckey" --group small \
    --disk "disk=$DATA/base.img" --log "$w/small.rclog" --out "$w/small.rcb")
small_data=$(python3 -c "
import os
f = os.open('$DATA/base.img', os.O_RDONLY); n = os.fstat(f).st_size; at = 0; d = 0
while at < n:
    try: s = os.lseek(f, at, os.SEEK_DATA)
    except OSError: break
    e = os.lseek(f, s, os.SEEK_HOLE); d += e - s; at = e
print(d)")
small_s=$(cut -f2 <<< "$r4")
big_rate=$(echo "scale=2; $data / $big_s / 1000000000" | bc)
small_rate=$(echo "scale=2; $small_data / $small_s / 1000000000" | bc)
row "$r" "$big_rate GB/s of data ($(stat -c %s "$w/base.rcb") bytes)"
row "$r4" "$small_rate GB/s of data; the $SIZE disk's rate is $(echo "scale=2; $big_rate / $small_rate" | bc)x (goal >= 0.8)"
rm -f "$w/small.rcb"

"$bin" vault init "$w/v" > /dev/null
row "$($mem "ingest of the base" "$bin" vault ingest "$w/v" "$w/base.rcb")" ""

# A point of 2,000 scattered 4 KiB writes, captured from the image, shipped and ingested.
python3 - "$w/disk.img" "$w/dirty.json" <<'PY'
import json, os, random, sys
random.seed(7)
ext = []
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    for _ in range(2000):
        at = random.randrange(0, size - 4096) // 4096 * 4096
        f.seek(at); f.write(os.urandom(4096))
        ext.append({"start": at, "length": 4096})
json.dump(ext, open(sys.argv[2], "w"))
PY
"$bin" log capture "$w/big.rclog" --disk disk --image "$w/disk.img" --extents "$w/dirty.json" > /dev/null
"$bin" log mark "$w/big.rclog" --kind crash > /dev/null
"$bin" log rotate "$w/big.rclog" --sealed-out "$w/big-1.rclog" > /dev/null
row "$($mem "ship of 2,000 writes" "$bin" ship --key "$w/k.rckey" "$w/big-1.rclog" --out-dir "$w/out")" ""
row "$($mem "ingest of that point" "$bin" vault ingest "$w/v" "$w/out"/big-*.rcb)" ""
row "$($mem "keyless verify" "$bin" vault verify "$w/v")" ""
row "$($mem "keyed verify" "$bin" vault verify "$w/v" --key "$w/k.rckey" --group big)" ""
row "$($mem "failover" "$bin" failover "$w/v" --group big --point latest --key "$w/k.rckey" \
    --out-dir "$w/fo")" ""
cmp -s <(head -c 64M "$w/disk.img") <(head -c 64M "$w/fo/disk.img") || { echo "failover differs" >&2; exit 1; }

# 100 changed chunks on the live disk, then the local resync of the pair.
python3 - "$w/disk.img" <<'PY'
import os, random, sys
random.seed(11)
with open(sys.argv[1], "r+b") as f:
    size = os.fstat(f.fileno()).st_size
    for _ in range(100):
        f.seek(random.randrange(0, size - 65536) // 65536 * 65536); f.write(os.urandom(65536))
PY
cold
limit=$($mem "limit: read both images' data (cold)" python3 benches/peers/read_data.py "$w/disk.img" "$w/fo/disk.img")
row "$limit" ""
cold
r=$($mem "resync run, 100 changed chunks (cold)" "$bin" resync run "$w/disk.img" "$w/fo/disk.img")
row "$r" "$(echo "scale=2; $(cut -f2 <<< "$r") / $(cut -f2 <<< "$limit")" | bc)x the limit"
row "$($mem "vault signature" "$bin" vault signature "$w/v" --group big --key "$w/k.rckey" \
    --out "$w/big.rcpsig")" ""
cold
limit=$($mem "limit: read the disk's data (cold)" python3 benches/peers/read_data.py "$w/disk.img")
row "$limit" ""
cold
r=$($mem "resync ship (cold)" "$bin" resync ship --key "$w/k.rckey" --signature "$w/big.rcpsig" \
    --group big --disk "disk=$w/disk.img" --log "$w/big-2.rclog" --out-dir "$w/out2")
row "$r" "$(echo "scale=2; $(cut -f2 <<< "$r") / $(cut -f2 <<< "$limit")" | bc)x the limit"
row "$($mem "vault points" "$bin" vault points "$w/v" --group big --json)" ""
# Retention: everything but the newest point merged into it (as of a far date), then GC.
row "$($mem "vault prune (keep the newest point)" "$bin" vault prune "$w/v" --window 1 \
    --keep-last 1 --now 2100-01-01T00:00:00Z)" ""
row "$($mem "vault gc" "$bin" vault gc "$w/v")" ""
rm -rf "$w"/*
if [ "$PART" = all ]; then vault_part; fi
rm -rf "$w"
