"""Benchmark plumbing for `make bench`: collect `bench_*.py`, keep each median, print a summary.

pytest only collects `test_*.py` by default and `make bench` runs `pytest benchmarks`, so the
benchmark modules are collected here. The engine test helpers live in tests/engine_helpers.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# (group, label, size, unit, median seconds), in run order
MEDIANS: list[tuple[str, str, int, str, float]] = []


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix == ".py" and file_path.name.startswith("bench_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture
def record():
    """`record(benchmark, group, label, size, unit)` after a benchmark ran: keeps its median."""

    def _record(benchmark, group: str, label: str, size: int = 0, unit: str = "") -> None:
        stats = getattr(benchmark, "stats", None)
        if stats is not None and getattr(stats, "stats", None) is not None:
            MEDIANS.append((group, label, size, unit, stats.stats.median))

    return _record


def pytest_terminal_summary(terminalreporter) -> None:
    if not MEDIANS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("review() summary (medians)")
    write(f"{'benchmark':<44} {'size':>12} {'median':>11} {'per unit':>14}")
    for group, label, size, unit, median in MEDIANS:
        per = f"{median / size * 1e6:8.3f} us/{unit}" if size and unit else ""
        shown = f"{size:,} {unit}" if size else ""
        write(f"{group + ': ' + label:<44} {shown:>12} {median * 1e3:8.3f} ms {per:>14}")
    write("design target: typical pod median <= 0.5 ms; cost per unit roughly constant (linear growth)")
