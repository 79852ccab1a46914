"""The report benchmark's mechanics (benchmarks/bench_report.py at 4,000 rows): the synthetic
run with its manifest blocks, the report over it, the baseline and the printed ratios. The
million-row numbers are in the README."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_report_small(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_report.py"), "--rows", "4000",
         "--repeat", "1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3,200 kept + 800 rejects" in done.stdout
    assert re.search(r"report\s+[\d.]+\s+[\d.]+x", done.stdout)
    assert "12 charts, 10 sections" in done.stdout  # every section drawn (no mix: text only)
    assert not (tmp_path / "run").exists()  # removed without --keep
