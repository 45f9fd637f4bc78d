#!/usr/bin/env bash
# The vault beside restic and borg on the shared benchmark images (../shared/bench), in the
# same run. Prints a TSV row per step: seconds, bytes, peak RSS, detail.
#
#   apt-get install -y restic borgbackup time
#   python3 ../shared/bench/make_images.py --size 4G --data-dir /tmp/rcbench
#   DATA=/tmp/rcbench/4g WORK=/tmp/rcbench/vault benches/peers/vault.sh
#
# Ingest: the base bundle of base.img (1 MiB chunks) into a new vault. Ten 1% points: each
# round rewrites the 695 extents of the 1% change list in a copy of base.img (changed.img's
# bytes, XORed with the round number so that every round is new data); replicore records them
# in the change log, ships and ingests the point; restic backs up the copy. Then: the vault's
# size beside restic's repository; failing over the base point (every blob decrypted and
# authenticated, the image written and synced) beside `restic restore` (as is, and followed by
# a sync of the restored image, so that both are durable) and `borg extract` of base.img; the
# keyed verify beside `restic check --read-data`. Inputs and repositories are read from a warm
# page cache.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-/tmp/rcbench/4g}
WORK=${WORK:-/tmp/rcbench/vault}
ROUNDS=${ROUNDS:-10}
# shellcheck source=benches/peers/store_common.sh
. benches/peers/store_common.sh
setup_store_bench vault
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p" "$WORK/out.txt"; }

printf 'step\ttool\tseconds\tbytes\tpeak_rss_kib\tdetail\n'
warm "$DATA/base.img"
"$bin" seed "$DATA/base.img" "$WORK/rc" "$WORK/vault" > /dev/null
warm "$WORK/rc/base.rcb"
read -r s m < <(timed "$bin" ingest "$WORK/rc" "$WORK/vault")
printf 'ingest\treplicore ingest (base bundle)\t%s\t%s\t%s\t\n' "$(field seconds)" "$(field stored_bytes)" "$m"

mkdir -p "$WORK/stage"
cp --sparse=always "$DATA/base.img" "$WORK/stage/disk.img"
restic init -q --repo "$WORK/restic" > /dev/null
read -r s m < <(cd "$WORK/stage" && timed restic backup -q --tag base --repo "$WORK/restic" disk.img)
printf 'base\trestic backup\t%s\t%s\t%s\t\n' "$s" "$(size "$WORK/restic")" "$m"
borg init --encryption=repokey-blake2 "$WORK/borg" > /dev/null 2>&1
read -r s m < <(cd "$WORK/stage" && timed borg create --compression zstd,1 "$WORK/borg::base" disk.img)
printf 'base\tborg create --compression zstd,1\t%s\t%s\t%s\t\n' "$s" "$(size "$WORK/borg")" "$m"

rc_round=0
restic_round=0
for k in $(seq 1 "$ROUNDS"); do
    python3 - "$DATA/changed.img" "$WORK/stage/disk.img" "$WORK/writes.txt" "$k" <<'PY'
import sys
src, dst, writes, k = open(sys.argv[1], "rb"), open(sys.argv[2], "r+b"), sys.argv[3], int(sys.argv[4])
table = bytes((b ^ k) & 0xFF for b in range(256))
for line in open(writes):
    o, n = map(int, line.split())
    src.seek(o)
    dst.seek(o)
    dst.write(src.read(n).translate(table))
PY
    warm "$WORK/stage/disk.img"
    timed "$bin" round "$WORK/stage/disk.img" "$WORK/writes.txt" "$WORK/rc" "$WORK/vault" > /dev/null
    rc_round=$(python3 -c "print($rc_round + $(field capture_ship) + $(field ingest))")
    read -r s m < <(cd "$WORK/stage" && timed restic backup -q --repo "$WORK/restic" disk.img)
    restic_round=$(python3 -c "print($restic_round + $s)")
done
printf '%s x 1%%\treplicore capture + ship + ingest (sum)\t%s\t-\t-\t\n' "$ROUNDS" "$rc_round"
printf '%s x 1%%\trestic backup (sum)\t%s\t-\t-\t\n' "$ROUNDS" "$restic_round"
printf 'size\treplicore vault (base + %s points)\t-\t%s\t-\t\n' "$ROUNDS" "$(size "$WORK/vault")"
printf 'size\trestic repository (base + %s snapshots)\t-\t%s\t-\t\n' "$ROUNDS" "$(size "$WORK/restic")"

# Failover of the base point beside restores of base.img.
warm "$WORK"/vault/packs/*
read -r s m < <(timed "$bin" failover "$WORK/rc" "$WORK/vault" "$WORK/failover" base)
printf 'restore\treplicore failover (base point, synced)\t%s\t%s\t%s\t\n' "$(field seconds)" "$(field data_bytes)" "$m"
rm -rf "$WORK/failover"
warm "$WORK"/restic/data/*/*
read -r s m < <(timed restic restore -q --repo "$WORK/restic" latest --tag base --target "$WORK/restic-out")
printf 'restore\trestic restore\t%s\t-\t%s\t\n' "$s" "$m"
rm -rf "$WORK/restic-out"
# The same, durable like replicore's failover: the restored image synced to disk.
read -r s m < <(timed sh -c "restic restore -q --repo '$WORK/restic' latest --tag base --target '$WORK/restic-out' && sync '$WORK/restic-out/disk.img'")
printf 'restore\trestic restore + sync\t%s\t-\t%s\t\n' "$s" "$m"
rm -rf "$WORK/restic-out"
warm "$WORK"/borg/data/*/*
mkdir -p "$WORK/borg-out"
read -r s m < <(cd "$WORK/borg-out" && timed borg extract --sparse "$WORK/borg::base")
printf 'restore\tborg extract --sparse\t%s\t-\t%s\t\n' "$s" "$m"
rm -rf "$WORK/borg-out"

read -r s m < <(timed "$bin" verify "$WORK/rc" "$WORK/vault")
printf 'verify\treplicore verify --key\t%s\t-\t%s\t%s\n' "$(field seconds)" "$m" "blobs=$(field decrypted)"
read -r s m < <(timed restic check -q --read-data --repo "$WORK/restic")
printf 'verify\trestic check --read-data\t%s\t-\t%s\t\n' "$s" "$m"
rm -rf "$WORK"
