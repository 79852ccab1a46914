"""`factory eval` and `factory eval --compare` as a user runs them, with the procedural solver
as the model (exact, so the scores are known), and the usage errors."""

from __future__ import annotations

import json

from tests.helpers import factory


def test_eval_and_compare_from_the_command_line(tmp_path):
    common = ["recipe=eval-arith", "teacher.backend=solver", "source.limit=12", "--k", "2"]
    for name in ("solver-a", "solver-b"):
        done = factory("eval", name, *common, "--out", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        assert "pass@1" in done.stdout and "1.000 [1.000, 1.000]" in done.stdout
        scores = json.loads((tmp_path / name / "scores.json").read_text())
        assert scores["metrics"]["pass@1"] == 1.0 and scores["metrics"]["problems"] == 12
    shown = factory("eval", "--compare", str(tmp_path / "solver-a"), str(tmp_path / "solver-b"))
    assert shown.returncode == 0, shown.stderr
    assert "maj@2" in shown.stdout and "+0.000" in shown.stdout


def test_eval_usage_errors_name_the_fix(tmp_path):
    done = factory("eval", "recipe=eval-arith")
    assert done.returncode == 2 and "usage: factory eval MODEL recipe=NAME" in done.stderr
    done = factory("eval", "m", "recipe=eval-arth")
    assert done.returncode == 2 and "did you mean 'eval-arith'" in done.stderr
