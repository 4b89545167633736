"""What the benchmarks read of a process from /proc."""

from __future__ import annotations

from pathlib import Path


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process has had, in MiB (NaN where /proc lacks it)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")
