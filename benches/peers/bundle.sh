#!/usr/bin/env bash
# Seed and ship of the shared benchmark images (../shared/bench) beside restic and borg, and
# the pipeline's limit (BLAKE3 + zstd -1 + AES-256-GCM per byte of non-zero data, 2 threads),
# in the same run. Prints a TSV row per step: seconds, bytes stored, peak RSS, detail.
#
#   apt-get install -y restic borgbackup b3sum zstd openssl time
#   python3 ../shared/bench/make_images.py --size 4G --data-dir /tmp/rcbench
#   DATA=/tmp/rcbench/4g WORK=/tmp/rcbench/bundle benches/peers/bundle.sh
#
# Seed: replicore seeds base.img (1 MiB chunks); restic backs it up; borg creates an archive
# with --compression zstd,1. Change: replicore records the 695 guest writes of changed.img
# (the 1% pair; the list comes from the images' manifest.json) into the change log, marks,
# rotates and ships (what a primary does per interval); restic and borg back up changed.img.
# Inputs are read from a warm page cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/rcbench/4g}
WORK=${WORK:-/tmp/rcbench/bundle}
# shellcheck source=benches/peers/store_common.sh
. benches/peers/store_common.sh
setup_store_bench bundle

printf 'step\ttool\tseconds\tbytes\tpeak_rss_kib\tdetail\n'
warm "$DATA/base.img"

# The limit: each stage over the whole image on 2 threads (zeros included, which only makes
# zstd and BLAKE3 look faster), AES-GCM from openssl's own speed test.
read -r s m < <(timed b3sum --num-threads 2 "$DATA/base.img")
printf 'limit\tb3sum --num-threads 2 base.img\t%s\t-\t%s\t\n' "$s" "$m"
read -r s m < <(timed sh -c "zstd -1 -T2 -q -c '$DATA/base.img' > /dev/null")
printf 'limit\tzstd -1 -T2 base.img\t%s\t-\t%s\t\n' "$s" "$m"
aes=$(openssl speed -evp aes-256-gcm -bytes 16384 -seconds 3 -multi 2 2>/dev/null |
    awk 'toupper($1) ~ /GCM/ {v = $NF} END {print v}' | tr -d k)
printf 'limit\topenssl speed aes-256-gcm 16 KiB x2\t-\t-\t-\t%s kB/s\n' "$aes"

read -r s m < <(timed "$bin" seed "$DATA/base.img" "$WORK/seed")
printf 'seed\treplicore seed\t%s\t%s\t%s\t%s\n' "$s" "$(sed -n 's/.*bundle_bytes=\([0-9]*\).*/\1/p' "$WORK/out.txt")" "$m" \
    "$(grep -o 'plain_bytes=[0-9]*' "$WORK/out.txt") $(grep -o 'peak_anon_kib=[0-9]*' "$WORK/out.txt")"

mkdir -p "$WORK/stage"
ln "$DATA/base.img" "$WORK/stage/disk.img"
restic init -q --repo "$WORK/restic" > /dev/null
read -r s m < <(cd "$WORK/stage" && timed restic backup -q --repo "$WORK/restic" disk.img)
printf 'seed\trestic backup\t%s\t%s\t%s\t\n' "$s" "$(size "$WORK/restic")" "$m"
borg init --encryption=repokey-blake2 "$WORK/borg" > /dev/null 2>&1
read -r s m < <(cd "$WORK/stage" && timed borg create --compression zstd,1 "$WORK/borg::s1" disk.img)
printf 'seed\tborg create --compression zstd,1\t%s\t%s\t%s\t\n' "$s" "$(size "$WORK/borg")" "$m"

warm "$DATA/changed.img"
read -r s m < <(timed "$bin" ship "$DATA/base.img" "$DATA/changed.img" "$WORK/writes.txt" "$WORK/ship")
printf 'change 1%%\treplicore capture + ship\t%s\t%s\t%s\t%s\n' \
    "$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' "$WORK/out.txt")" \
    "$(sed -n 's/.*bundle_bytes=\([0-9]*\).*/\1/p' "$WORK/out.txt")" "$m" \
    "$(grep -o 'capture=[0-9.]*' "$WORK/out.txt") $(grep -o 'captured_bytes=[0-9]*' "$WORK/out.txt") $(grep -o 'peak_anon_kib=[0-9]*' "$WORK/out.txt") (time and RSS of the whole tool include an untimed seed)"
rm "$WORK/stage/disk.img"
ln "$DATA/changed.img" "$WORK/stage/disk.img"
before=$(size "$WORK/restic")
read -r s m < <(cd "$WORK/stage" && timed restic backup -q --repo "$WORK/restic" disk.img)
printf 'change 1%%\trestic backup (repository growth)\t%s\t%s\t%s\t\n' "$s" "$(( $(size "$WORK/restic") - before ))" "$m"
before=$(size "$WORK/borg")
read -r s m < <(cd "$WORK/stage" && timed borg create --compression zstd,1 "$WORK/borg::s2" disk.img)
printf 'change 1%%\tborg create (repository growth)\t%s\t%s\t%s\t\n' "$s" "$(( $(size "$WORK/borg") - before ))" "$m"
rm -rf "$WORK"
