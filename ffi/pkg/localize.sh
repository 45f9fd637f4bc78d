#!/usr/bin/env bash
# Makes a copy of the static library that exports only the C API:
#
#   ffi/pkg/localize.sh IN.a OUT.a
#
# The archive cargo builds (crate-type staticlib) holds the Rust standard library, the crates
# replicore uses and the zstd it bundles, all with global symbols: about 7,600 (ZSTD_*, HUF_*,
# FSE_*, blake3_*, Rust mangled names, compiler-builtins' __muldc3 ...). A host that links its
# own libzstd (or any of these) gets one copy of each, not necessarily its own; and replicore's
# code may end up calling the host's zstd. So the installed archive is made of one object in
# which every defined global symbol except replicore_* is local:
#
#   1. objcopy -R .llvmbc -R .llvmcmd: drop the LLVM bitcode the standard library's objects
#      carry. Nothing links it, and once step 2 has concatenated it, it is no longer valid
#      bitcode: binutils on a machine with LLVM's LLVMgold plugin in /usr/lib/bfd-plugins then
#      abort ("LLVM ERROR: Invalid encoding"), and even per object that plugin hides symbols
#      from nm.
#   2. ld -r --whole-archive: link every object into one relocatable object, so references
#      between them are resolved inside it and local symbols can serve them. Each function
#      keeps its own section, so a host linking with --gc-sections still drops what it does
#      not call.
#   3. objcopy --keep-global-symbols (the defined replicore_* symbols): every other defined
#      global or weak symbol becomes local. Undefined references (libc, libgcc_s's _Unwind_*,
#      libdl, libpthread ...) stay undefined for the host's link to resolve. Also renames the
#      signatures of COMDAT groups (DW.ref.rust_eh_personality), or a Rust host's group of the
#      same name would replace ours and leave our references pointing into a discarded
#      section; and drops .llvm_addrsig, whose symbol indices step 3 invalidates.
#   4. ar rcs: an archive of that one object.
#
# zstd's tracing hooks (ZSTD_trace_*) stay weak undefined references, as in every libzstd: a
# host that defines them is called by the bundled zstd as well.
#
# Uses binutils only (objcopy, ld, readelf, ar). Called by ffi/install.sh; checked by
# ffi/tests/run-c-tests.sh (only replicore_* global, and exactly ffi/symbols.txt).
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 IN.a OUT.a" >&2; exit 2; }
in=$1
out=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Defined symbols of binding GLOBAL, WEAK or UNIQUE in an object or archive (readelf: unlike
# nm, it never hands the file to a linker plugin).
defined_globals() {
    readelf -s -W "$1" | awk '$5 != "LOCAL" && $5 != "Bind" && $7 != "UND" && NF >= 8 {print $8}' |
        sort -u
}

objcopy -R .llvmbc -R .llvmcmd "$in" "$tmp/stripped.a"
ld -r -o "$tmp/whole.o" --whole-archive "$tmp/stripped.a"
defined_globals "$tmp/whole.o" | grep '^replicore_' > "$tmp/keep.txt" || {
    echo "$in defines no replicore_ symbol" >&2
    exit 1
}
renames=()
while read -r signature; do
    case $signature in
        replicore_*) ;;
        *) renames+=(--redefine-sym "$signature=replicore.$signature") ;;
    esac
done < <(readelf -g -W "$tmp/whole.o" | sed -n "s/^COMDAT group section \[ *[0-9]*\] \`[^']*' \[\(.*\)\] contains .*/\1/p" | sort -u)
objcopy -R .llvm_addrsig --keep-global-symbols="$tmp/keep.txt" "${renames[@]}" \
    "$tmp/whole.o" "$tmp/replicore.o"
others=$(defined_globals "$tmp/replicore.o" | grep -v '^replicore_' || true)
[ -z "$others" ] || { echo "still global after localizing: $others" >&2; exit 1; }
rm -f "$tmp/out.a"
ar rcs "$tmp/out.a" "$tmp/replicore.o"
mv "$tmp/out.a" "$out"
