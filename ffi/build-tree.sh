#!/usr/bin/env bash
# Builds the C library into the build tree, ready to link and run from there:
#
#   ffi/build-tree.sh
#
#   TARGET/release/libreplicore.so       the shared library; soname libreplicore.so.ABI
#   TARGET/release/libreplicore.so.ABI   -> libreplicore.so
#   TARGET/release/libreplicore.a        the static library as cargo builds it (every crate's
#                                        symbols global; ffi/install.sh installs one that
#                                        exports only replicore_*)
#
# TARGET is $CARGO_TARGET_DIR, else target/. A program linked with `-L TARGET/release
# -lreplicore` records the soname, libreplicore.so.ABI, as NEEDED, and cargo makes no file of
# that name: build.rs runs before the link, and cargo has no step after it. So this script
# runs cargo build --release --locked -p replicore-ffi, then makes the link; with it, such a
# program starts with LD_LIBRARY_PATH=TARGET/release. The link is relative, so rebuilds keep it
# valid; `cargo clean` removes it (run this again).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
abi=$(sed -n 's/^const ABI: u32 = \([0-9]*\);/\1/p' ffi/build.rs)
[ -n "$abi" ] || { echo "could not read the ABI from ffi/build.rs" >&2; exit 1; }
cargo build --release --locked -p replicore-ffi
target=${CARGO_TARGET_DIR:-$root/target}/release
ln -sfn libreplicore.so "$target/libreplicore.so.$abi"
echo "build tree: $target/libreplicore.so.$abi -> libreplicore.so"
