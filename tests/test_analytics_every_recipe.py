"""The analyst's tools on a run of every shipped run recipe: each recipe runs (a few problems,
no model download), then every warehouse view answers, `factory report` writes its page,
`factory show` finds rows and `factory diff` compares the run with itself. Arithmetic recipes
are answered by the exact solver teacher (with slips, so journeys and drops exist), the rest by
tests.helpers.CannedTeacher, whose answers are mostly wrong, so those runs mostly exercise the
rejects. Training recipes (distill-*) make no run and are not listed."""

from __future__ import annotations

import pytest

from factory.diff_runs import diff_runs
from factory.inspect_traces import find_traces
from factory.mix import run_mix
from factory.mix_recipe import load_mix_recipe
from factory.pipeline import run_recipe
from factory.recipe import known_recipes, load_recipe
from factory.report import build_report
from factory.report_data import report_data
from factory.warehouse import VIEWS, open_warehouse
from tests.helpers import CannedTeacher

SOLVER = {"teacher.backend": "solver", "teacher.solver_error_rate": "0.3"}
RUNS = {  # recipe → overrides (a few problems each)
    "math-cot": {**SOLVER, "source.limit": "6"},
    "arith-solver": {**SOLVER, "source.limit": "8"},
    "journey-math": {**SOLVER, "source.limit": "8"},
    "eval-arith": {**SOLVER, "source.limit": "6"},
    "gsm8k-cot": {"source.limit": "4"},
    "eval-gsm8k": {"source.limit": "4"},
    "eval-math500": {"source.limit": "4"},
    "knowledge": {"source.limit": "6"},
    "code-cot": {"source.limit": "2"},
    "reverify": {},
}
MIXES = {"r1-mix"}  # mixes of the math-cot and knowledge runs above


def test_every_run_recipe_is_covered():
    shipped = {name for name in known_recipes() if not name.startswith("distill-")}
    assert shipped == set(RUNS) | MIXES


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("every-recipe")
    out = {}
    for name, keys in RUNS.items():
        solver = keys.get("teacher.backend") == "solver"
        keys = keys if solver else {**keys, "teacher.model": CannedTeacher.model_name}
        recipe = load_recipe(name, [f"{k}={v}" for k, v in keys.items()])
        teacher = None if solver else CannedTeacher()
        run_recipe(recipe, base / name, teacher=teacher)
        out[name] = base / name
    # r1-mix reads the default run directories of math-cot and knowledge; point its buckets
    # at the runs above instead
    mix = load_mix_recipe(
        "r1-mix",
        [
            f"mix.buckets.reasoning.inputs=[{{path: {out['math-cot']}}}]",
            f"mix.buckets.knowledge.inputs=[{{path: {out['knowledge']}}}]",
        ],
    )
    run_mix(mix, base / "r1-mix")
    out["r1-mix"] = base / "r1-mix"
    return out


@pytest.mark.parametrize("name", [*RUNS, *MIXES])
def test_views_report_and_show_work_on_the_run(runs, name, tmp_path):
    run = runs[name]
    con = open_warehouse([run])
    try:
        counts = {v: con.execute(f"SELECT count(*) FROM {v}").fetchone()[0] for v in VIEWS}
        counts["judged_samples"] = con.execute(  # rows with a verdict, journey rows aside
            "SELECT count(*) FROM (SELECT kind, verdicts FROM traces UNION ALL "
            "SELECT kind, verdicts FROM rejects) WHERE len(verdicts) > 0 AND kind != 'journey'"
        ).fetchone()[0]
        kept, rejects = counts["traces"], counts["rejects"]
        manifest_rows = con.execute("SELECT rows_traces, rows_rejects FROM runs").fetchone()
    finally:
        con.close()
    assert (kept, rejects) == manifest_rows and counts["runs"] == 1
    assert kept + rejects > 0
    data = report_data([run])
    acceptance = data["acceptance"]["source"]
    # every kept row is one kept sample, but a journey row (built from two samples)
    assert sum(r["kept"] for r in acceptance) == kept - data["journey_rows"]
    assert (data["journey_rows"] > 0) == (name == "journey-math")
    samples = sum(r["samples"] for r in acceptance)
    assert samples == sum(c["samples"] for c in data["costs"])
    assert data["lengths"]["n"] == (0 if name == "reverify" else samples)  # no teacher tokens
    assert samples - kept + data["journey_rows"] <= rejects
    assert sum(o["n"] for o in data["outcomes"]) == counts["judged_samples"]
    result = build_report([run], tmp_path / "report.html")
    page = (tmp_path / "report.html").read_text()
    assert all(f'<section id="{s}">' in page for s in result["sections"])
    assert result["charts"] and page.count("<svg") == len(result["charts"])
    assert "funnel-0" in result["charts"]  # every run has its per-stage funnel drawn
    rows = find_traces(run, where=None, limit=3, include_rejects=True)
    assert 0 < len(rows) <= 3
    same = diff_runs(run, run)  # factory diff: a run against itself differs in nothing
    assert same["recipe"]["same"] and same["recipe"]["changed"] == []
    assert all(step["delta"] == 0 for step in same["funnel"])
