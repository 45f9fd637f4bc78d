#!/usr/bin/env python3
"""Runs a command and prints its wall time and peak anonymous memory (RssAnon from
/proc/PID/status, sampled every 5 ms; the page cache of mapped files is not counted):

  python3 peakmem.py LABEL COMMAND...    ->    LABEL<TAB>seconds<TAB>peak MiB

The command's stdout and stderr go to $ERRF.out and $ERRF (default /tmp/peakmem.err); a
failing command's stderr is printed and its exit code returned. Peaks shorter than the
sampling interval can be missed.
"""
import os
import subprocess
import sys
import time

label, cmd = sys.argv[1], sys.argv[2:]
errf = os.environ.get("ERRF", "/tmp/peakmem.err")
t0 = time.perf_counter()
with open(errf + ".out", "w") as out, open(errf, "w") as err:
    p = subprocess.Popen(cmd, stdout=out, stderr=err)
    peak = 0
    status = f"/proc/{p.pid}/status"
    while p.poll() is None:
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        time.sleep(0.005)
wall = time.perf_counter() - t0
print(f"{label}\t{wall:.2f}\t{peak / 1024:.1f}", flush=True)
if p.returncode != 0:
    sys.stderr.write(open(errf).read())
    sys.exit(p.returncode)
