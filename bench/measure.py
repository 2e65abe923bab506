"""Runs a command and reports its wall time and peak resident memory (scripts/bench).

Usage: python3 bench/measure.py OUT_FILE CMD [ARGS...]
The command's stdout goes to OUT_FILE (stderr passes through). Prints one JSON line:
{"seconds": ..., "max_rss_kib": ..., "exit": ...}. The peak is the kernel's high-water mark
of the child's resident set (getrusage ru_maxrss, the VmHWM of /proc/<pid>/status at exit),
so a short spike is not missed the way sampling would miss it.
"""

import json
import resource
import subprocess
import sys
import time


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    with open(sys.argv[1], "wb") as out:
        started = time.perf_counter()
        code = subprocess.run(sys.argv[2:], stdout=out).returncode
        seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": round(seconds, 3), "max_rss_kib": peak, "exit": code}))
    sys.exit(code)


if __name__ == "__main__":
    main()
