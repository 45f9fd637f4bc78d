#!/usr/bin/env python3
"""The reference a resync point is measured against (benches/peers/resync_chain.sh): the chunks
of CHANGED that differ from BASE on a GRID, each compressed alone with zstd -1 (kept raw when
that is not smaller, as replicore's blob encoder does) and sealed with AES-256-GCM; prints
`changed_chunks compressed_bytes encode_seconds` (one thread, best of three).

  python3 changed_chunks.py BASE CHANGED GRID

Needs libzstd (libzstd.so.1) and the `cryptography` package.
"""
import ctypes
import os
import sys
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

base, changed, grid = sys.argv[1], sys.argv[2], int(sys.argv[3])
z = ctypes.CDLL("libzstd.so.1")
z.ZSTD_createCCtx.restype = ctypes.c_void_p
z.ZSTD_compressCCtx.restype = ctypes.c_size_t
z.ZSTD_compressCCtx.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int]
z.ZSTD_isError.argtypes = [ctypes.c_size_t]
z.ZSTD_compressBound.restype = ctypes.c_size_t
z.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
cctx = z.ZSTD_createCCtx()
zero = bytes(grid)
chunks = []
with open(base, "rb") as fb, open(changed, "rb") as fc:
    while True:
        a, b = fb.read(grid), fc.read(grid)
        if not b:
            break
        # A chunk that became zeros is a zero range: nothing to encode.
        if a != b and b != zero[:len(b)]:
            chunks.append(b)
dst = ctypes.create_string_buffer(z.ZSTD_compressBound(grid))
aead = AESGCM(os.urandom(32))


def encode():
    size = 0
    t0 = time.perf_counter()
    for c in chunks:
        n = z.ZSTD_compressCCtx(cctx, dst, len(dst), c, len(c), 1)
        body = dst.raw[:n] if not z.ZSTD_isError(n) and n < len(c) else c
        sealed = aead.encrypt(os.urandom(12), body, None)
        size += len(body)
        del sealed
    return size, time.perf_counter() - t0


size, secs = min((encode() for _ in range(3)), key=lambda r: r[1])
print(len(chunks), size, f"{secs:.3f}")
