#!/usr/bin/env bash
# Installs libreplicore into a temporary prefix (ffi/install.sh) and runs the C tests and the
# example hosts against it through pkg-config: an AddressSanitizer + UBSan build and the same
# program under valgrind (both linked statically), a run against the shared library, the
# header compiled as C++; then checks the exported symbols against ffi/symbols.txt and the
# soname. Prints each test's "N passed, N failed" line; exits non-zero on any failure.
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
for t in ffi/tests/c/test_threads.c ffi/examples/agent.c; do
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

echo "== exported symbols: ffi/symbols.txt, and the header's functions"
so="$prefix/lib/libreplicore.so"
nm -D --defined-only "$so" | awk '$2 == "T" {print $3}' | grep '^replicore_' | sort > "$out/symbols.txt"
# A symbol removed or renamed breaks hosts: the list changes only on purpose (copy the new one
# over ffi/symbols.txt, and bump REPLICORE_ABI_VERSION when one goes).
diff -u ffi/symbols.txt "$out/symbols.txt"
grep -oE '\breplicore_[a-z0-9_]+\(' include/replicore.h | tr -d '(' | sort -u | diff -u - ffi/symbols.txt
abi=$(sed -n 's/^const ABI: u32 = \([0-9]*\);/\1/p' ffi/build.rs)
readelf -d "$so" | grep -q "SONAME.*\[libreplicore\.so\.$abi\]"
echo "symbols: $(wc -l < ffi/symbols.txt) exported, as listed; soname libreplicore.so.$abi"
echo "C tests: ok"
