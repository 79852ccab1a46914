"""`factory run recipe=reverify`: existing traces re-verified without a teacher, agreement with
the input's own labels, and clear errors for a wrong column mapping."""

from __future__ import annotations

import json

import duckdb

from factory.stats import run_stats
from tests.helpers import factory


def test_reverify_the_bundled_traces_and_compare_with_their_labels(tmp_path):
    out = tmp_path / "run"
    done = factory("run", "recipe=reverify", "--out", str(out))
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["teacher"]["requested"] == 0 and m["teacher"]["model"] is None
    assert m["funnel"] == {
        "problems": 13,
        "generated": 13,
        "parsed": 12,  # t13 was cut off mid-think
        "verified": 8,
        "deduped": 8,
        "kept": 8,
    }
    (pair,) = run_stats(out)["verifier_agreement"]
    # t8 is labelled correct but answers 5 where the gold is 15: math catches it
    assert pair["matrix"] == {"fail/fail": 3, "pass/fail": 1, "pass/pass": 8}
    (row,) = duckdb.sql(
        f"SELECT id, verdicts FROM read_parquet('{out}/rejects/*.parquet') "
        "WHERE list_contains(list_transform(verdicts, lambda v: v.verdict), 'pass')"
    ).fetchall()
    assert row[0] == "sample-traces:t8"
    assert {v["verifier"]: v["verdict"] for v in row[1]} == {"math": "fail", "label": "pass"}
    kept = duckdb.sql(f"SELECT sample_index, problem_id FROM read_parquet('{out}/data/*.parquet')")
    assert max(i for i, _ in kept.fetchall()) == 1  # two traces of one problem: indices 0, 1


def test_a_wrong_completion_column_is_named(tmp_path):
    bad = factory(
        "run", "recipe=reverify", "source.completion_field=output", "--out", str(tmp_path)
    )
    assert bad.returncode == 2
    assert "column 'output' not found" in bad.stderr and "source.completion_field" in bad.stderr


def test_traces_cannot_come_from_a_procedural_source():
    bad = factory("run", "recipe=math-cot", "source.completion_field=completion", "--dry-run")
    assert bad.returncode == 2 and "source.kind=file|hub" in bad.stderr


def test_every_trace_is_judged_even_with_problem_dedup_on(tmp_path):
    """Traces of one problem share its text, so problem dedup never applies to them."""
    out = tmp_path / "run"
    done = factory("run", "recipe=reverify", "dedup.problems.exact=true", "--out", str(out))
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["funnel"]["generated"] == 13 and m["funnel"]["verified"] == 8


def test_duplicate_trace_ids_are_refused_before_any_work(tmp_path):
    bad = factory("run", "recipe=reverify", "source.id_field=problem", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert "sample-traces.jsonl:2" in bad.stderr and "already used at" in bad.stderr
    assert "traces need unique ids" in bad.stderr
