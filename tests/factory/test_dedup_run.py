"""Dedup inside `factory run` (determinism, kill and resume) and `factory dedup DIR`."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import duckdb
import pytest

from factory.dedup_run import dedup_run
from factory.errors import RecipeError
from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from tests.helpers import factory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _completion(rng: random.Random, answer: int) -> str:
    steps = " ".join(
        f"Step {k}: we add {rng.randint(1, 999)} and {rng.randint(1, 999)} to the running total."
        for k in range(30)
    )
    return f"<think>\n{steps}\n</think>\nThe answer is \\boxed{{{answer}}}."


def _near(rng: random.Random, text: str, words: int) -> str:
    out = text.split(" ")
    for _ in range(words):
        out[rng.randrange(5, len(out) - 5)] = "plus"
    return " ".join(out)


@pytest.fixture
def traces_file(tmp_path):
    """12 problems; each has an original trace, an exact copy (re-spaced), a near copy with 1
    word changed (Jaccard ~0.97) and one with 10 changed (~0.74)."""
    rng = random.Random(0)
    rows = []
    for p in range(12):
        original = _completion(rng, p)
        variants = [original, original.replace(" ", "  "), _near(rng, original, 1)]
        variants.append(_near(rng, original, 10))
        for v, completion in enumerate(variants):
            rows.append(
                {
                    "id": f"q{p:02d}-{v}",
                    "problem": f"Problem {p}: what is the total?",
                    "gold": str(p),
                    "completion": completion,
                    "label": True,
                }
            )
    rng.shuffle(rows)
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _recipe(path, *extra: str):
    return load_recipe("reverify", [f"source.path={path}", "dedup.workers=0", *extra])


def _kept(out) -> list[str]:
    rows = duckdb.sql(f"SELECT id FROM read_parquet('{out}/data/*.parquet') ORDER BY id")
    return [r[0] for r in rows.fetchall()]


def _clusters(out) -> dict[str, str]:
    sql = (
        f"SELECT id, dedup_cluster FROM read_parquet('{out}/data/*.parquet') UNION ALL "
        f"SELECT id, dedup_cluster FROM read_parquet('{out}/rejects/*.parquet') "
        "WHERE stage = 'dedup_traces'"
    )
    return dict(duckdb.sql(sql).fetchall())


def test_run_dedups_traces_with_a_cluster_on_every_row(tmp_path, traces_file):
    m = run_recipe(_recipe(traces_file, "dedup.traces.threshold=0.88"), tmp_path / "a")
    kept = _kept(tmp_path / "a")
    # originals survive (smallest id); exact and close copies go; the 10-word copies stay
    assert kept == sorted(f"sample-traces:q{p:02d}-{v}" for p in range(12) for v in (0, 3))
    clusters = _clusters(tmp_path / "a")
    assert len(clusters) == 48
    assert all(c.split("-")[0] == i.split("-")[0] for i, c in clusters.items())
    report = m["dedup"]["traces"]
    assert report["drops"] == {"duplicate_exact": 12, "duplicate_near": 12}
    assert report["rows"] == 48 and report["largest_cluster"] == 3
    again = run_recipe(_recipe(traces_file, "dedup.traces.threshold=0.88"), tmp_path / "b")
    assert _kept(tmp_path / "b") == kept and _clusters(tmp_path / "b") == clusters
    assert again["run_id"] != m["run_id"]


def test_killed_mid_write_and_resumed_keeps_the_same_set(tmp_path, traces_file):
    run_recipe(_recipe(traces_file), tmp_path / "clean")
    args = [
        sys.executable,
        "-m",
        "cli",
        "run",
        "recipe=reverify",
        f"source.path={traces_file}",
        "dedup.workers=0",
        "output.shard_rows=5",
        "--out",
        str(tmp_path / "killed"),
    ]
    env = {**os.environ, "FACTORY_CRASH_AT": "shard_mid_write@2"}
    crashed = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    assert crashed.returncode != 0 and not (tmp_path / "killed" / "manifest.json").exists()
    resumed = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _kept(tmp_path / "killed") == _kept(tmp_path / "clean")
    assert _clusters(tmp_path / "killed") == _clusters(tmp_path / "clean")


def test_factory_dedup_tightens_and_loosens_an_existing_run(tmp_path, traces_file):
    out = tmp_path / "run"
    first = run_recipe(_recipe(traces_file, "dedup.traces.threshold=0.88"), out)
    looser = dedup_run(out, ["dedup.traces.near=false"])  # exact only: near copies return
    assert len(_kept(out)) == 36 and looser["rows"]["traces"] == 36
    assert looser["rededup_of"]["run_id"] == first["run_id"]
    assert looser["rededup_of"]["earlier_duplicates"] == 24
    assert looser["dedup"]["traces"]["drops"] == {"duplicate_exact": 12}
    # settings build on the run's current ones (near is still off): turn it back on
    tighter = dedup_run(out, ["dedup.traces.near=true", "dedup.traces.threshold=0.6"])
    assert _kept(out) == sorted(f"sample-traces:q{p:02d}-0" for p in range(12))
    assert tighter["funnel"]["kept"] == 12 and tighter["rows"]["traces"] == 12
    rejects = duckdb.sql(
        f"SELECT stage, drop_reason, count(*) FROM read_parquet('{out}/rejects/*.parquet') "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert ("dedup_traces", "duplicate_near", 24) in rejects
    assert sum(n for s, _, n in rejects if s == "dedup_traces") == 36  # each once
    runs = duckdb.sql(
        f"SELECT run_id FROM read_parquet('{out}/data/*.parquet') UNION "
        f"SELECT run_id FROM read_parquet('{out}/rejects/*.parquet')"
    )
    assert [r[0] for r in runs.fetchall()] == [tighter["run_id"]]


def test_factory_dedup_cli_and_its_errors(tmp_path, traces_file):
    out = tmp_path / "run"
    run_recipe(_recipe(traces_file), out)
    done = factory("dedup", str(out), "dedup.traces.threshold=0.6", "dedup.workers=0")
    assert done.returncode == 0, done.stderr
    assert "kept: 12; duplicates: 12 exact, 24 near" in done.stdout
    shown = factory("stats", str(out))
    assert shown.returncode == 0 and "dedup" in shown.stdout
    assert any(
        line.split()[:6] == ["│", "traces", "│", "48", "│", "12"]
        for line in shown.stdout.splitlines()
    ), shown.stdout
    bad = factory("dedup", str(out), "teacher.n=4")
    assert bad.returncode == 2 and "dedup.* settings only" in bad.stderr
    bad = factory("dedup", str(out), "dedup.traces.threshhold=0.6")
    assert bad.returncode == 2 and "threshold" in bad.stderr  # did you mean
    bad = factory("dedup", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "no published version" in bad.stderr
    with pytest.raises(RecipeError, match="both off"):
        dedup_run(out, ["dedup.traces.near=false", "dedup.traces.exact=false"])
