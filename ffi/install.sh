#!/usr/bin/env bash
# Installs libreplicore into a prefix, like any system library:
#
#   ffi/install.sh [--prefix DIR] [--destdir DIR]        (default prefix /usr/local)
#
#   PREFIX/lib/libreplicore.so.VERSION   the shared library; soname libreplicore.so.ABI
#   PREFIX/lib/libreplicore.so.ABI       -> libreplicore.so.VERSION
#   PREFIX/lib/libreplicore.so           -> libreplicore.so.ABI (for -lreplicore)
#   PREFIX/lib/libreplicore.a            the static library, exporting only replicore_*
#   PREFIX/include/replicore.h           the header
#   PREFIX/lib/pkgconfig/replicore.pc    for pkg-config --cflags --libs replicore
#                                        (--static adds what the static library needs)
#
# Builds the release library first (ffi/build-tree.sh: cargo build --release --locked -p
# replicore-ffi, and the soname link in the build tree).
#
# The static library is not cargo's archive as built: ffi/pkg/localize.sh links its objects
# into one and makes every defined symbol but the replicore_* functions local, so that the
# bundled zstd, the Rust standard library and the other crates inside it never clash with (or
# stand in for) a host's own libzstd or Rust code. `nm -g --defined-only libreplicore.a`
# lists exactly ffi/symbols.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
destdir=
while [ $# -gt 0 ]; do
    case $1 in
        --prefix) prefix=$2; shift 2 ;;
        --destdir) destdir=$2; shift 2 ;;
        *) echo "usage: $0 [--prefix DIR] [--destdir DIR]" >&2; exit 2 ;;
    esac
done
cd "$root"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
abi=$(sed -n 's/^const ABI: u32 = \([0-9]*\);/\1/p' ffi/build.rs)
[ -n "$version" ] && [ -n "$abi" ] || { echo "could not read the version or the ABI" >&2; exit 1; }
ffi/build-tree.sh >&2
target=${CARGO_TARGET_DIR:-$root/target}/release
lib=$destdir$prefix/lib
inc=$destdir$prefix/include
mkdir -p "$lib/pkgconfig" "$inc"
install -m 0755 "$target/libreplicore.so" "$lib/libreplicore.so.$version"
ln -sf "libreplicore.so.$version" "$lib/libreplicore.so.$abi"
ln -sf "libreplicore.so.$abi" "$lib/libreplicore.so"
ffi/pkg/localize.sh "$target/libreplicore.a" "$lib/libreplicore.a"
chmod 0644 "$lib/libreplicore.a"
install -m 0644 include/replicore.h "$inc/replicore.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" ffi/pkg/replicore.pc.in \
    > "$lib/pkgconfig/replicore.pc"
chmod 0644 "$lib/pkgconfig/replicore.pc"
echo "installed libreplicore $version (soname libreplicore.so.$abi) into $destdir$prefix"
