#!/usr/bin/env bash
# Installs libreplicore into a temporary prefix (ffi/install.sh) and runs the C tests and the
# example hosts against it through pkg-config: an AddressSanitizer + UBSan build and the same
# program under valgrind (both linked statically), a run against the shared library, the
# header compiled as C++. Then the link tests (ffi/tests/link/): the static library beside the
# system's libzstd and in a Rust host, and a program built against the build tree's shared
# library. Last, checks the exported symbols of both libraries against ffi/symbols.txt, and
# the soname. Prints each test's "N passed, N failed" line; exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
target=${CARGO_TARGET_DIR:-$root/target}
out="$target/c-tests"
prefix="$out/prefix"
rm -rf "$prefix"
mkdir -p "$out"

ffi/install.sh --prefix "$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
version=$(pkg-config --modversion replicore)
cflags=(-std=c11 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags replicore)
        "-DEXPECTED_VERSION=\"$version\"")
# Static: the archive by pkg-config's -L and -Bstatic, then what it needs (Libs.private).
static_libs=($(pkg-config --libs-only-L replicore) -Wl,-Bstatic -lreplicore -Wl,-Bdynamic
             $(pkg-config --static --libs-only-l replicore | sed 's/-lreplicore//'))
shared_libs=($(pkg-config --libs replicore) "-Wl,-rpath,$prefix/lib")

run_c() { # NAME SOURCE [C compiler flags...]: ASan, valgrind, shared
    local name=$1 src=$2
    shift 2
    echo "== $name: AddressSanitizer + UBSan"
    gcc "${cflags[@]}" "$@" -g -fsanitize=address,undefined -fno-omit-frame-pointer \
        -fno-sanitize-recover=all "$src" "${static_libs[@]}" -o "$out/$name-asan"
    ASAN_OPTIONS=detect_leaks=1 "$out/$name-asan"

    echo "== $name: valgrind"
    gcc "${cflags[@]}" "$@" -g -O1 "$src" "${static_libs[@]}" -o "$out/$name-plain"
    valgrind -q --error-exitcode=1 --leak-check=full --show-possibly-lost=no \
        --errors-for-leak-kinds=definite,indirect "$out/$name-plain"

    echo "== $name: shared library"
    gcc "${cflags[@]}" "$@" "$src" "${shared_libs[@]}" -o "$out/$name-shared"
    "$out/$name-shared"
}

for t in ffi/tests/c/*.c; do
    run_c "$(basename "$t" .c)" "$t" -Iffi/tests/c -pthread
done
# The threaded programs under ThreadSanitizer too, against the shared library: it checks the C
# side's sharing (the library is not instrumented; its own locking is what the Rust tests check).
for t in ffi/tests/c/test_threads.c ffi/tests/c/test_host.c ffi/examples/agent.c; do
    name=$(basename "$t" .c)
    echo "== $name: ThreadSanitizer"
    gcc "${cflags[@]}" -Iffi/tests/c -pthread -g -fsanitize=thread "$t" "${shared_libs[@]}" \
        -o "$out/$name-tsan"
    TSAN_OPTIONS="halt_on_error=1 suppressions=$root/ffi/tests/tsan.supp" "$out/$name-tsan" \
        > "$out/$name-tsan.log" 2>&1 || { cat "$out/$name-tsan.log"; exit 1; }
    tail -n 1 "$out/$name-tsan.log"
done
# Every function, once per pointer argument, with that argument NULL (generated from the header).
python3 ffi/tests/null_walk.py include/replicore.h > "$out/null_walk.c"
run_c null_walk "$out/null_walk.c"
for e in ffi/examples/*.c; do
    [ -e "$e" ] || continue
    run_c "example-$(basename "$e" .c)" "$e" -pthread
done

echo "== header as C++"
g++ -std=c++17 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags replicore) \
    ffi/tests/c/header_compiles.cpp "${static_libs[@]}" -o "$out/header_compiles"
"$out/header_compiles"
for e in ffi/examples/*.cpp; do
    [ -e "$e" ] || continue
    name=example-$(basename "$e" .cpp)
    echo "== $name: C++, AddressSanitizer"
    g++ -std=c++17 -Wall -Wextra -Werror -pedantic $(pkg-config --cflags replicore) -g \
        -fsanitize=address,undefined -fno-omit-frame-pointer "$e" "${static_libs[@]}" -o "$out/$name"
    "$out/$name"
    echo "== $name: C++, shared library"
    g++ -std=c++17 -Wall -Wextra -Werror $(pkg-config --cflags replicore) "$e" "${shared_libs[@]}" \
        -o "$out/$name-shared"
    "$out/$name-shared"
done

# The static library beside the system's libzstd (libzstd-dev): the host must get its own
# zstd, replicore the one inside it. Shared libzstd after the archive: with every symbol of the
# archive global, the host's ZSTD_versionNumber came from the bundled zstd; and the program
# must import from libzstd.so only the functions the host calls (with libzstd before the
# archive, replicore's code called the system's zstd instead of its own).
src=ffi/tests/link/static_beside_zstd.c
echo "== static_beside_zstd: shared libzstd, AddressSanitizer + UBSan"
gcc "${cflags[@]}" -Iffi/tests/c -g -fsanitize=address,undefined -fno-omit-frame-pointer \
    -fno-sanitize-recover=all "$src" "${static_libs[@]}" -lzstd -o "$out/static_beside_zstd-asan"
ASAN_OPTIONS=detect_leaks=1 "$out/static_beside_zstd-asan"
grep -oE '\bZSTD_[A-Za-z_]+\(' "$src" | tr -d '(' | sort -u > "$out/zstd-called.txt"
nm -D --undefined-only "$out/static_beside_zstd-asan" | awk '$1 == "U" && $2 ~ /^ZSTD_/ {print $2}' |
    sort > "$out/zstd-imported.txt"
diff -u "$out/zstd-called.txt" "$out/zstd-imported.txt" ||
    { echo "the program imports other zstd functions than the host calls" >&2; exit 1; }
# Static libzstd.a before the archive: no duplicate definitions (cargo's archive gave 117).
echo "== static_beside_zstd: static libzstd, valgrind"
gcc "${cflags[@]}" -Iffi/tests/c -g -O1 "$src" -Wl,-Bstatic -lzstd -Wl,-Bdynamic \
    "${static_libs[@]}" -o "$out/static_beside_zstd-plain"
valgrind -q --error-exitcode=1 --leak-check=full --show-possibly-lost=no \
    --errors-for-leak-kinds=definite,indirect "$out/static_beside_zstd-plain"

# A Rust host: its standard library and ours side by side, each catching its own panics.
echo "== rust_host: the static library in a Rust program"
EXPECTED_VERSION=$version rustc --edition 2024 -O -D warnings ffi/tests/link/rust_host.rs \
    -L "$prefix/lib" -l static=replicore -o "$out/rust_host"
"$out/rust_host"

# The build tree, uninstalled (ffi/build-tree.sh made the soname link): link against
# target/release/libreplicore.so and run with LD_LIBRARY_PATH.
echo "== test_abi: the build tree's shared library"
gcc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -Iffi/tests/c \
    "-DEXPECTED_VERSION=\"$version\"" ffi/tests/c/test_abi.c -L "$target/release" -lreplicore \
    -o "$out/test_abi-build-tree"
LD_LIBRARY_PATH="$target/release" ldd "$out/test_abi-build-tree" |
    grep "libreplicore\.so\.[0-9]* => $target/release/libreplicore\.so\.[0-9]" > /dev/null
LD_LIBRARY_PATH="$target/release" "$out/test_abi-build-tree"

echo "== exported symbols: ffi/symbols.txt, and the header's functions"
so="$prefix/lib/libreplicore.so"
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | grep '^replicore_' | sort > "$out/symbols.txt"
# A symbol removed or renamed breaks hosts: the list changes only on purpose (copy the new one
# over ffi/symbols.txt, and bump REPLICORE_ABI_VERSION when one goes).
diff -u ffi/symbols.txt "$out/symbols.txt"
grep -oE '\breplicore_[a-z0-9_]+\(' include/replicore.h | tr -d '(' | sort -u | diff -u - ffi/symbols.txt
abi=$(sed -n 's/^const ABI: u32 = \([0-9]*\);/\1/p' ffi/build.rs)
readelf -d "$so" | grep -q "SONAME.*\[libreplicore\.so\.$abi\]"
# The static library defines no other global symbol (ffi/pkg/localize.sh): none of the bundled
# zstd, Rust std or crates can clash with a host's. The list must also have no .llvmbc section:
# on a machine with LLVM's plugin in bfd-plugins, nm hides the symbols of objects that have one.
# (Not `grep -q`: it may exit before readelf is done, and under pipefail readelf's SIGPIPE
# then reads as no match.)
a="$prefix/lib/libreplicore.a"
if readelf -S -W "$a" | grep '\.llvmbc' > /dev/null; then
    echo "$a holds LLVM bitcode (.llvmbc): not the localized archive" >&2
    exit 1
fi
nm -g --defined-only "$a" | awk 'NF == 3 {print $3}' | sort > "$out/static-symbols.txt"
if grep -v '^replicore_' "$out/static-symbols.txt" > "$out/static-others.txt"; then
    echo "$a exports $(wc -l < "$out/static-others.txt") symbols without the replicore_ prefix:" >&2
    cat "$out/static-others.txt" >&2
    exit 1
fi
diff -u ffi/symbols.txt "$out/static-symbols.txt"
echo "symbols: $(wc -l < ffi/symbols.txt) exported by each library, as listed, and nothing else" \
    "by the static one; soname libreplicore.so.$abi"
echo "C tests: ok"
