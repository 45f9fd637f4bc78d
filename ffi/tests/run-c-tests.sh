#!/usr/bin/env bash
# Builds libreplicore (release) and runs the C tests: an AddressSanitizer + UBSan build, the same
# test under valgrind, the header compiled as C++ and linked, and a run against the shared
# library. Prints each test's "N passed, N failed" line; exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
out="$target/c-tests"
mkdir -p "$out"

cargo build --release --locked -p replicore-ffi
static_lib="$target/release/libreplicore.a"
shared_dir="$target/release"
# The link flags the static library needs (cargo rustc --print native-static-libs).
native_libs="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "could not read the version from Cargo.toml" >&2; exit 1; }

cflags=(-std=c11 -Wall -Wextra -Werror -pedantic -Iinclude "-DEXPECTED_VERSION=\"$version\"")

for t in ffi/tests/c/*.c; do
    name=$(basename "$t" .c)
    echo "== $name: AddressSanitizer + UBSan"
    gcc "${cflags[@]}" -g -fsanitize=address,undefined -fno-omit-frame-pointer \
        -fno-sanitize-recover=all "$t" "$static_lib" $native_libs -o "$out/$name-asan"
    ASAN_OPTIONS=detect_leaks=1 "$out/$name-asan"

    echo "== $name: valgrind"
    gcc "${cflags[@]}" -g -O1 "$t" "$static_lib" $native_libs -o "$out/$name-plain"
    valgrind -q --error-exitcode=1 --leak-check=full --show-possibly-lost=no \
        --errors-for-leak-kinds=definite,indirect "$out/$name-plain"

    echo "== $name: shared library"
    gcc "${cflags[@]}" "$t" -L"$shared_dir" -lreplicore -o "$out/$name-shared"
    LD_LIBRARY_PATH="$shared_dir" "$out/$name-shared"
done

echo "== header as C++"
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude ffi/tests/c/header_compiles.cpp \
    "$static_lib" $native_libs -o "$out/header_compiles"
"$out/header_compiles"
echo "C tests: ok"
