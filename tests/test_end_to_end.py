"""The whole pipeline with the real embedded teacher (SmolLM2-135M on CPU), checked with
every reader a user would point at the output: DuckDB, datasets, polars, pandas."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from factory.pipeline import run_recipe
from factory.query import query
from factory.recipe import load_recipe
from factory.record import arrow_schema, sample_id
from factory.stats import run_stats

TRACE_COLUMNS = [f.name for f in arrow_schema()]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def math_run(tmp_path_factory, smollm2, model_cache):
    recipe = load_recipe(
        "math-cot",
        [
            "source.limit=8",
            "teacher.n=2",
            "teacher.max_new_tokens=64",
            f"teacher.cache_dir={model_cache}",
        ],
    )
    out = tmp_path_factory.mktemp("runs") / "math"
    manifest = run_recipe(recipe, out, teacher=smollm2)
    return out, manifest, recipe


def test_published_folder_holds_only_shards(math_run):
    out, manifest, _ = math_run
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    assert not (out / ".staging").exists()
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_readers_agree_with_the_manifest(math_run):
    import datasets
    import pandas as pd
    import polars as pl

    out, manifest, _ = math_run
    shard = str(out / "data" / "train-00000-of-00001.parquet")
    n = manifest["rows"]["traces"]
    assert n == manifest["funnel"]["kept"] == sum(f["rows"] for f in manifest["files"]["traces"])
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{shard}')").fetchall() == [(n,)]
    ds = datasets.load_dataset("parquet", data_files=shard, split="train")
    assert len(ds) == n and ds.column_names == TRACE_COLUMNS
    assert pl.read_parquet(shard).columns == TRACE_COLUMNS
    assert len(pd.read_parquet(shard)) == n
    # the folder loads as a dataset, too
    assert len(datasets.load_dataset(str(out / "data"), split="train")) == n


def test_funnel_adds_up(math_run):
    _, m, recipe = math_run
    stages = {s["name"]: s for s in m["stages"]}
    f = m["funnel"]
    assert f["problems"] == 8
    assert f["generated"] == stages["generate"]["inputs"] * recipe.teacher.n
    for name in ("parse", "verify", "dedup_problems", "dedup_traces"):
        s = stages[name]
        assert s["inputs"] - sum(s["drops"].values()) == s["outputs"], name
    assert f["generated"] >= f["parsed"] >= f["verified"] >= f["deduped"] == f["kept"]
    total_drops = sum(sum(s["drops"].values()) for s in m["stages"])
    assert m["rows"]["rejects"] == total_drops
    assert m["rows"]["problems"] == 8
    assert m["teacher"]["completion_tokens"] > 0 and m["teacher"]["completion_tokens_per_s"] > 0


def test_trace_rows(math_run):
    out, m, recipe = math_run
    cols, rows = query(out, "SELECT * FROM traces")
    assert rows, "the seeded run keeps some traces; none means a stage is broken"
    for values in rows:
        row = dict(zip(cols, values, strict=True))
        assert row["verdict"] == "pass" and row["finish_reason"] == "stop"
        assert row["id"] == sample_id(
            row["problem_id"], row["sample_index"], m["generation_fingerprint"]
        )
        assert [msg["role"] for msg in row["messages"]] == ["system", "user", "assistant"]
        assistant = row["messages"][-1]["content"]
        assert assistant.count("<think>") == 1 and assistant.count("</think>") == 1
        assert row["reasoning"] in assistant and row["answer"] in assistant
        assert row["recipe"] == "math-cot" and row["run_id"] == m["run_id"]
        assert row["recipe_fingerprint"] == recipe.fingerprint() == m["recipe_fingerprint"]
        assert row["teacher_model"] == "smollm2-135m-instruct" and row["temperature"] == 0.7
        assert row["dedup_cluster"] and row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
        for provenance in ("problem_id", "source", "problem", "gold", "generation_fingerprint"):
            assert row[provenance], provenance


def test_rejects_carry_stage_and_reason(math_run):
    out, m, _ = math_run
    _, rows = query(out, "SELECT stage, drop_reason, count(*) FROM rejects GROUP BY ALL")
    from_parquet = {(s, r): n for s, r, n in rows}
    from_manifest = {(s["name"], r): n for s in m["stages"] for r, n in s["drops"].items()}
    assert from_parquet == from_manifest
    _, rows = query(
        out, "SELECT count(*) FROM rejects WHERE drop_reason = 'wrong_answer' AND verdict != 'fail'"
    )
    assert rows == [(0,)]


def test_stats(math_run):
    out, m, _ = math_run
    stats = run_stats(out)
    assert stats["funnel"] == m["funnel"]
    by_source = {r["source"]: r for r in stats["by_source"]}
    assert set(by_source) == {"reasoning_gym/basic_arithmetic", "reasoning_gym/chain_sum"}
    assert sum(r["generated"] for r in by_source.values()) == m["funnel"]["generated"]
    assert sum(r["kept"] for r in by_source.values()) == m["funnel"]["kept"]


def test_gsm8k_recipe_on_shared_data(tmp_path, smollm2, model_cache, shared_data):
    recipe = load_recipe(
        "gsm8k-cot",
        [
            f"source.path={shared_data / 'gsm8k' / 'train.jsonl'}",
            "source.limit=3",
            "teacher.n=1",
            "teacher.max_new_tokens=48",
            f"teacher.cache_dir={model_cache}",
        ],
    )
    m = run_recipe(recipe, tmp_path / "gsm8k", teacher=smollm2)
    assert m["funnel"]["problems"] == 3 and m["funnel"]["generated"] == 3
    _, rows = query(tmp_path / "gsm8k", "SELECT problem_id, gold FROM problems ORDER BY problem_id")
    assert rows == [("gsm8k:0", "72"), ("gsm8k:1", "10"), ("gsm8k:2", "5")]


def test_rows_without_gold_are_counted_drops(tmp_path, smollm2, model_cache):
    problems = tmp_path / "p.jsonl"
    problems.write_text(
        '{"question": "Calculate 2 + 2.", "answer": "4"}\n{"question": "Calculate 3 + 3."}\n'
    )
    recipe = load_recipe(
        "math-cot",
        [
            "source.kind=file",
            f"source.path={problems}",
            "teacher.n=1",
            "teacher.max_new_tokens=32",
            f"teacher.cache_dir={model_cache}",
        ],
    )
    m = run_recipe(recipe, tmp_path / "run", teacher=smollm2)
    has_gold = next(s for s in m["stages"] if s["name"] == "has_gold")
    assert has_gold["drops"] == {"no_gold": 1} and m["funnel"]["generated"] == 1
    _, rows = query(
        tmp_path / "run",
        "SELECT problem_id, stage, drop_reason, sample_index FROM rejects WHERE stage = 'has_gold'",
    )
    assert rows == [("p:1", "has_gold", "no_gold", None)]


def test_rerun_requests_nothing_and_changes_nothing(math_run, smollm2):
    out, manifest, recipe = math_run
    shard = out / "data" / "train-00000-of-00001.parquet"
    before = shard.read_bytes()
    again = run_recipe(recipe, out, teacher=smollm2)
    assert again["up_to_date"] and again["run_id"] == manifest["run_id"]
    assert shard.read_bytes() == before


def test_filter_change_reuses_every_sample(tmp_path, smollm2, model_cache):
    args = [
        "source.limit=4",
        "teacher.n=2",
        "teacher.max_new_tokens=48",
        f"teacher.cache_dir={model_cache}",
    ]
    first = run_recipe(load_recipe("math-cot", args), tmp_path / "r", teacher=smollm2)
    assert first["teacher"]["requested"] == 8 and first["teacher"]["reused"] == 0
    changed = load_recipe(
        "math-cot",
        [*args, "dedup.traces.exact=false", "dedup.traces.near=false", "parse.think=required"],
    )
    assert changed.generation_fingerprint() == first["generation_fingerprint"]
    second = run_recipe(changed, tmp_path / "r", teacher=smollm2)
    assert second["teacher"]["requested"] == 0 and second["teacher"]["reused"] == 8
    assert second["funnel"]["generated"] == 8 and second["run_id"] != first["run_id"]
    assert "dedup_traces" not in {s["name"] for s in second["stages"]}
    assert "traces" not in second["dedup"] and second["dedup"]["problems"]["rows"] == 4
    _, rows = query(
        tmp_path / "r",
        "SELECT DISTINCT run_id FROM traces UNION SELECT DISTINCT run_id FROM rejects",
    )
    assert rows == [(second["run_id"],)]  # the new version replaced the old one whole
    # a sampling change is a new generation namespace: everything is asked again
    resampled = load_recipe("math-cot", [*args, "teacher.temperature=0.5"])
    third = run_recipe(resampled, tmp_path / "r", teacher=smollm2)
    assert third["teacher"]["requested"] == 8
    assert len(list((tmp_path / "r" / "generations").iterdir())) == 2


def test_stored_samples_are_the_teachers_answers_untouched_by_filters(math_run):
    import pyarrow.parquet as pq

    out, manifest, _ = math_run
    store = out / "generations" / manifest["generation_fingerprint"]
    rows = pq.read_table(sorted(store.glob("samples-*.parquet"))).to_pylist()
    assert len(rows) == manifest["samples"]["total"] == manifest["funnel"]["generated"]
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["system", "user"]  # no parsed turn added
        assert row["verdict"] is None and row["reasoning"] is None and row["dedup_cluster"] is None
