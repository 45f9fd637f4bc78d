#!/usr/bin/env bash
# Whole resync of the shared benchmark image pairs (../shared/bench) by replicore, rsync, rdiff,
# and the b3sum floor, in the same run. Prints a TSV row per tool and pair: seconds, bytes sent
# (delta or literal data), peak RSS (which for replicore and b3sum counts the mapped image's
# pages; replicore's anonymous memory is in the detail column as peak_anon_kib).
#
#   apt-get install -y rsync rdiff b3sum time
#   python3 ../shared/bench/make_images.py --size 4G --data-dir /tmp/rcbench
#   DATA=/tmp/rcbench/4g WORK=/tmp/rcbench/work benches/peers/resync.sh
#
# Each run starts from a fresh sparse copy of base.img as the target and changed.img (1%) or
# changed10.img (10%) as the source, with the page cache warm (the images are read once first).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/rcbench/4g}
WORK=${WORK:-/tmp/rcbench/work}
BLOCK=65536
mkdir -p "$WORK"
cargo build --release --locked --example resync >&2
bin=target/release/examples/resync
[ -n "${CARGO_TARGET_DIR:-}" ] && bin=$CARGO_TARGET_DIR/release/examples/resync

fresh_target() {
    rm -f "$WORK/target.img" "$WORK"/*.sig "$WORK"/*.delta "$WORK/patched.img" "$WORK/resync.rcdelta"
    cp --sparse=always "$DATA/base.img" "$WORK/target.img"
    sync
    cat "$DATA/$1.img" "$WORK/target.img" > /dev/null
}

# time_cmd LABEL CMD...: runs CMD, prints "seconds<TAB>peak_rss_kib" of it.
time_cmd() {
    /usr/bin/time -f "%e	%M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1
    cat "$WORK/time.txt"
}

printf 'pair\ttool\tseconds\tbytes_sent\tpeak_rss_kib\tdetail\n'
for pair in changed changed10; do
    src="$DATA/$pair.img"

    fresh_target "$pair"
    read -r s m < <(time_cmd "$bin" run "$src" "$WORK/target.img" "$BLOCK")
    cmp -s "$src" "$WORK/target.img" || { echo "replicore resync left a different target" >&2; exit 1; }
    printf '%s\treplicore resync\t%s\t%s\t%s\t%s\n' "$pair" "$s" "$(sed -n 's/.*data_bytes=\([0-9]*\).*/\1/p' "$WORK/out.txt")" "$m" \
        "local, no delta file; $(grep -o 'peak_anon_kib=[0-9]*' "$WORK/out.txt")"

    fresh_target "$pair"
    read -r s m < <(time_cmd "$bin" steps "$src" "$WORK/target.img" "$WORK" "$BLOCK")
    cmp -s "$src" "$WORK/target.img" || { echo "replicore steps left a different target" >&2; exit 1; }
    printf '%s\treplicore signature+delta+apply\t%s\t%s\t%s\t%s\n' "$pair" "$s" \
        "$(sed -n 's/.*delta_bytes=\([0-9]*\).*/\1/p' "$WORK/out.txt")" "$m" "$(sed -n 's/mode=steps \(signature=[0-9.]* delta=[0-9.]* apply=[0-9.]*\).*/\1/p' "$WORK/out.txt") $(grep -o 'peak_anon_kib=[0-9]*' "$WORK/out.txt")"

    fresh_target "$pair"
    read -r s m < <(time_cmd rsync --inplace --no-whole-file -B "$BLOCK" --stats "$src" "$WORK/target.img")
    cmp -s "$src" "$WORK/target.img" || { echo "rsync left a different target" >&2; exit 1; }
    printf '%s\trsync --inplace --no-whole-file -B %s\t%s\t%s\t%s\t%s\n' "$pair" "$BLOCK" "$s" \
        "$(sed -n 's/^Literal data: \([0-9,]*\).*/\1/p' "$WORK/out.txt" | tr -d ,)" "$m" ""

    fresh_target "$pair"
    read -r s1 m1 < <(time_cmd rdiff -b "$BLOCK" signature "$WORK/target.img" "$WORK/t.sig")
    read -r s2 m2 < <(time_cmd rdiff delta "$WORK/t.sig" "$src" "$WORK/t.delta")
    read -r s3 m3 < <(time_cmd rdiff patch "$WORK/target.img" "$WORK/t.delta" "$WORK/patched.img")
    cmp -s "$src" "$WORK/patched.img" || { echo "rdiff left a different target" >&2; exit 1; }
    total=$(echo "$s1 + $s2 + $s3" | bc)
    peak=$(printf '%s\n' "$m1" "$m2" "$m3" | sort -n | tail -1)
    printf '%s\trdiff -b %s signature+delta+patch\t%s\t%s\t%s\t%s\n' "$pair" "$BLOCK" "$total" \
        "$(stat -c %s "$WORK/t.delta")" "$peak" "signature=$s1 delta=$s2 patch=$s3"

    fresh_target "$pair"
    read -r s m < <(time_cmd b3sum --num-threads 2 "$src" "$WORK/target.img")
    printf '%s\tb3sum --num-threads 2 (both images: the floor)\t%s\t-\t%s\t%s\n' "$pair" "$s" "$m" ""
done
rm -rf "$WORK"
