#!/usr/bin/env bash
# The resync into the chain (issue 17) measured through the command line, beside its limits
# and its peer, in the same run: on the shared images (base.img seeded; changed.img, the 1%
# drift of 4-256 KiB guest writes, as the disk after a tracker loss), for each chunk grid
# (the seed's default 1 MiB and 64 KiB):
#
#   seed (the re-seeding a resync avoids: its bundle's bytes), ingest, keyed verify of the
#   vault, `vault signature` of the base point, `resync ship` of changed.img, against
#   `b3sum --num-threads 2` of changed.img (the hashing floor) and
#   `rsync --inplace --no-whole-file -B 65536` of the same pair.
#
#   apt-get install -y b3sum rsync python3-cryptography   # libzstd1 too (changed_chunks.py)
#   python3 ../shared/bench/make_images.py --size 1G --data-dir /tmp/rcbench    # or 4G
#   DATA=/tmp/rcbench/1g WORK=/tmp/rcbench/chain benches/peers/resync_chain.sh
#
# Prints one TSV row per step: grid, step, wall seconds, bytes, and the ratios the issue
# names. Inputs are read from a warm page cache; one run (the machine is shared: repeat it).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/rcbench/1g}
WORK=${WORK:-/tmp/rcbench/chain}
cargo build --release --locked -q
bin=${CARGO_TARGET_DIR:-$(pwd)/target}/release/replicore
export REPLICORE_PASSPHRASE=bench
rm -rf "$WORK"
mkdir -p "$WORK"
cat "$DATA/base.img" "$DATA/changed.img" > /dev/null # warm the page cache

secs() { # runs "$@" quietly; prints the wall seconds
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > /dev/null 2> "$WORK/last.err" || { cat "$WORK/last.err" >&2; return 1; }
    t1=$(date +%s.%N)
    echo "$t1 - $t0" | bc
}
ratio() { echo "scale=2; $1 / $2" | bc; }

printf 'grid\tstep\tseconds\tbytes\tnote\n'
b3=$(secs b3sum --num-threads 2 "$DATA/changed.img")
printf 'any\tb3sum --num-threads 2 of the disk\t%s\t\t\n' "$b3"
cp "$DATA/base.img" "$WORK/rsync.img"
rs=$(secs rsync --inplace --no-whole-file -B 65536 "$DATA/changed.img" "$WORK/rsync.img")
printf 'any\trsync of the pair\t%s\t\t\n' "$rs"
for grid in 1M 64K; do
    w="$WORK/$grid"
    mkdir -p "$w"
    "$bin" keygen --out "$w/k.rckey" > /dev/null 2>&1
    s=$(secs "$bin" seed --key "$w/k.rckey" --group g --disk "disk=$DATA/base.img" \
        --log "$w/g.rclog" --out "$w/base.rcb" --chunk-size "$grid")
    seed_bytes=$(stat -c %s "$w/base.rcb")
    printf '%s\tseed (re-seeding)\t%s\t%s\t\n' "$grid" "$s" "$seed_bytes"
    "$bin" vault init "$w/v" > /dev/null
    s=$(secs "$bin" vault ingest "$w/v" "$w/base.rcb")
    printf '%s\tingest\t%s\t\t\n' "$grid" "$s"
    verify=$(secs "$bin" vault verify "$w/v" --key "$w/k.rckey" --group g)
    printf '%s\tkeyed verify\t%s\t\t\n' "$grid" "$verify"
    sig=$(secs "$bin" vault signature "$w/v" --group g --key "$w/k.rckey" --out "$w/g.rcpsig")
    printf '%s\tvault signature\t%s\t%s\t%sx keyed verify (goal <= 1.2)\n' "$grid" "$sig" \
        "$(stat -c %s "$w/g.rcpsig")" "$(ratio "$sig" "$verify")"
    ship=$(secs "$bin" resync ship --key "$w/k.rckey" --signature "$w/g.rcpsig" --group g \
        --disk "disk=$DATA/changed.img" --log "$w/g2.rclog" --out-dir "$w/out")
    point_bytes=$(stat -c %s "$w"/out/*.rcb)
    # The reference: the changed chunks compressed and sealed one by one (one thread).
    bytes_per_grid=$(numfmt --from=iec "$grid")
    read -r n_changed compressed encode < <(python3 benches/peers/changed_chunks.py \
        "$DATA/base.img" "$DATA/changed.img" "$bytes_per_grid")
    printf '%s\tencode of the %s changed chunks (zstd -1 + AES-256-GCM, 1 thread)\t%s\t%s\t\n' \
        "$grid" "$n_changed" "$encode" "$compressed"
    printf '%s\tresync ship\t%s\t%s\t%sx (b3sum + encode) (goal <= 1.25), rsync %sx slower (goal >= 4), point %sx the compressed changed chunks (goal <= 1.2), 1/%s of re-seeding (goal 1/20); %s\n' \
        "$grid" "$ship" "$point_bytes" "$(ratio "$ship" "$(echo "$b3 + $encode" | bc)")" \
        "$(ratio "$rs" "$ship")" "$(ratio "$point_bytes" "$compressed")" \
        "$(echo "$seed_bytes / $point_bytes" | bc)" "$(tail -n 1 "$WORK/last.err")"
done
