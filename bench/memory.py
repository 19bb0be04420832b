"""Memory probes shared by the benchmarks (Linux: /proc and getrusage)."""

from __future__ import annotations

import contextlib
import resource


def rss_mb() -> float:
    """The current resident set size of this process in MiB (NaN where /proc is missing)."""
    with contextlib.suppress(OSError):  # no /proc (not Linux): report NaN rather than fail a benchmark
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(children: bool = False) -> float:
    """Peak resident set size in MiB of this process, or of its waited-for children (ru_maxrss is KiB)."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024
