# Shared by bundle.sh and vault.sh (sourced after DATA and WORK are set): a fresh WORK, the
# timing example built, restic and borg told their bench passphrases, the 1% change's write
# list from the images' manifest, and the timing helpers.
#
#   setup_store_bench EXAMPLE   sets $bin to the built example's path
#   timed CMD...                runs CMD (output to $WORK/out.txt), prints "seconds<TAB>peak_rss_kib"
#   size PATH                   bytes under PATH
#   warm FILE...                reads FILEs into the page cache

setup_store_bench() {
    rm -rf "$WORK"
    mkdir -p "$WORK"
    cargo build --release --locked --example "$1" >&2
    bin=${CARGO_TARGET_DIR:-target}/release/examples/$1
    export RESTIC_PASSWORD=bench-password-not-secret BORG_PASSPHRASE=bench-password-not-secret
    export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
    python3 - "$DATA/manifest.json" "$WORK/writes.txt" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["changed"]
open(sys.argv[2], "w").write("".join(f"{o} {n}\n" for o, n, _ in m["write_list"]))
PY
}

timed() {
    sync
    /usr/bin/time -f "%e	%M" -o "$WORK/time.txt" "$@" > "$WORK/out.txt" 2>&1
    cat "$WORK/time.txt"
}
size() { du -sb "$1" | cut -f1; }
warm() { cat "$@" > /dev/null; }
