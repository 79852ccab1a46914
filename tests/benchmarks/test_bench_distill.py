"""The distillation proof's mechanics (benchmarks/bench_distill.py --quick): data from the
solver teacher, journeys, a baseline eval of the real SmolLM2, two short trainings of it and
their evals, end to end. The full run's numbers are in the README; this only proves the path
works on a fresh machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_distill_quick(tmp_path, model_cache):
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_distill.py"), "--quick",
         "--work", str(tmp_path / "work"), "--json", str(out), "--cache-dir", model_cache],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["eval_problems"] == 6 and r["train_problems"] + r["held_out_overlap_removed"] == 40
    assert r["data"]["plain"]["rows"] == r["train_problems"]  # the solver is exact
    assert r["data"]["journey"]["selection"]["journey"]["built"] >= 1
    for tag in ("plain", "journey"):
        assert r["train"][tag]["global_step"] == 2 and r["train"][tag]["last_loss"] is not None
    for key in ("before", "after_plain", "after_journey"):
        assert 0.0 <= r[key]["pass@1"] <= 1.0 and r[key]["problems"] == 6
    assert "journey - plain (same steps)" in done.stdout
