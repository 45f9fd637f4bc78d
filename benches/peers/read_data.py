#!/usr/bin/env python3
"""Reads the data (not the holes, found with SEEK_DATA/SEEK_HOLE) of every file given, in reads
of up to 8 MiB, 16 at a time (threads: the device sees a queue, as it does from replicore's
read-ahead): the device's limit for a step that must read those bytes (benches/peers/scale.sh).

  python3 read_data.py FILE...
"""
import os
import sys
from concurrent.futures import ThreadPoolExecutor

PIECE = 8 << 20
QUEUE = 16


def pieces(f):
    """(offset, length) of every piece of the file's data, in order."""
    size, at = os.fstat(f).st_size, 0
    while at < size:
        try:
            start = os.lseek(f, at, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(f, start, os.SEEK_HOLE)
        while start < end:
            n = min(PIECE, end - start)
            yield start, n
            start += n
        at = end


def read(f, piece):
    at, n = piece
    while n > 0:
        got = len(os.pread(f, min(n, PIECE), at))
        if got == 0:
            break
        at, n = at + got, n - got


with ThreadPoolExecutor(QUEUE) as pool:
    for path in sys.argv[1:]:
        f = os.open(path, os.O_RDONLY)
        # Consumed as submitted: the pool's queue is the only read-ahead.
        for _ in pool.map(lambda p: read(f, p), pieces(f)):
            pass
        os.close(f)
