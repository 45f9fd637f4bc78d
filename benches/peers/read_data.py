#!/usr/bin/env python3
"""Reads the data (not the holes, found with SEEK_DATA/SEEK_HOLE) of every file given, in 8 MiB
reads: the device's limit for a step that must read those bytes (benches/peers/scale.sh).

  python3 read_data.py FILE...
"""
import os
import sys

for path in sys.argv[1:]:
    f = os.open(path, os.O_RDONLY)
    size, at = os.fstat(f).st_size, 0
    while at < size:
        try:
            start = os.lseek(f, at, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(f, start, os.SEEK_HOLE)
        while start < end:
            start += len(os.pread(f, min(8 << 20, end - start), start))
        at = end
    os.close(f)
