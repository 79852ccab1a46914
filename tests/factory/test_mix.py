"""`r1-mix`: finished runs and published folders → one mixed run directory. Mixes hit their
targets within one sample per bucket, are reproducible for a seed whatever the input order,
report shortfalls instead of repeating rows, and their output works with stats and publish.

Input runs are written with the real writers (`open_writers` + `RunDir.publish`) from
hand-made records, so no model is loaded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import duckdb
import pyarrow.parquet as pq
import pytest
import yaml

from factory.errors import RecipeError
from factory.mix import MixError, run_mix
from factory.mix_recipe import is_mix_recipe, load_mix_recipe
from factory.record import Record
from factory.storage.rundir import RunDir, current_version
from tests.helpers import REPO
from tests.helpers import factory as factory_cli

# --- building inputs ----------------------------------------------------------------------


def record(i: int, source: str, kind: str = "reasoning", tokens: int | None = 10) -> Record:
    return Record(
        problem_id=f"{source}:{i}",
        source=source,
        problem=f"What is {i} + 0?",
        gold=str(i),
        kind=kind,
        id=f"{source}-{i:04d}",
        sample_index=0,
        messages=[
            {"role": "system", "content": "Think first."},
            {"role": "user", "content": f"What is {i} + 0?"},
        ],
        completion=f"<think>\n{i} plus nothing is {i}.\n</think>\nThe answer is \\boxed{{{i}}}.",
        teacher_model="fake",
        completion_tokens=tokens,
        prompt_tokens=5,
        finish_reason="stop",
        verdict="pass",
        verdicts=[{"verifier": "math", "verdict": "pass", "reason": "exact_number"}],
        meta={"index": i},
    )


def make_run(path: Path, records: list[Record], name: str = "src") -> Path:
    """A finished run directory holding `records` as kept traces."""
    from factory.pipeline import open_writers

    recipe = SimpleNamespace(name=name, output=SimpleNamespace(shard_rows=7, compression="zstd"))
    run_id, fingerprint = f"{name}-{path.name}", f"fp-{name}"
    with RunDir(path) as rundir:
        traces, rejects, problems = open_writers(rundir, run_id, recipe, fingerprint)
        for r in records:
            traces.add(r.row())
        files = {"traces": traces.publish(), "rejects": rejects.publish()}
        files["problems"] = problems.publish()
        n = traces.total
        rundir.publish(
            run_id,
            {
                "run_id": run_id,
                "recipe_name": name,
                "recipe_fingerprint": fingerprint,
                "generation_fingerprint": "gen",
                "funnel": {"problems": n, "generated": n, "kept": n},
                "teacher": {"backend": "fake", "model": "fake"},
                "tokens_kept": {"prompt": 5 * n, "completion": 10 * n},
                "stages": [],
                "seconds": 0.0,
                "rows": {"traces": n, "rejects": 0, "problems": 0},
                "files": files,
            },
        )
    return path


def mix(tmp_path: Path, buckets: list[dict], name: str = "mix", **settings) -> Path:
    """A mix recipe file (loaded by the tests through load_mix_recipe, as `factory run` does)."""
    path = tmp_path / f"{name}.yaml"
    data = {"description": "test mix", "mix": {**settings, "buckets": buckets}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows_of(out: Path) -> list[dict]:
    base = current_version(out)
    files = sorted((base / "data").glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def content(rows: list[dict]) -> list[tuple]:
    """What a mix picked, without the run constants that change with every run."""
    return [(r["id"], r["completion"], json.loads(r["meta"])["mix"]["bucket"]) for r in rows]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("inputs")
    tokens = [5 + (i * 37) % 60 for i in range(40)]  # 5..64, deterministic
    return {
        "math": make_run(
            base / "math",
            [record(i, "math", tokens=t) for i, t in enumerate(tokens)],
            name="math-cot",
        ),
        "knowledge": make_run(
            base / "knowledge", [record(i, "kn", "knowledge") for i in range(20)], "knowledge"
        ),
        "both": make_run(
            base / "both",
            [record(i, "both", "reasoning" if i % 2 else "knowledge") for i in range(30)],
        ),
        "untracked": make_run(base / "untracked", [record(i, "u", tokens=None) for i in range(9)]),
    }


def bucket(name: str, target: int | None, *paths: Path, **extra) -> dict:
    return {"name": name, "target": target, "inputs": [{"path": str(p)} for p in paths], **extra}


# --- targets -------------------------------------------------------------------------------


def test_sample_targets_are_exact(tmp_path, inputs):
    recipe = load_mix_recipe(
        str(
            mix(
                tmp_path,
                [
                    bucket("reasoning", 12, inputs["math"]),
                    bucket("knowledge", 5, inputs["knowledge"]),
                ],
            )
        )
    )
    m = run_mix(recipe, tmp_path / "out")
    got = {b["name"]: (b["target"], b["achieved"], b["shortfall"]) for b in m["mix"]["buckets"]}
    assert got == {"reasoning": (12, 12, 0), "knowledge": (5, 5, 0)}
    rows = rows_of(tmp_path / "out")
    assert len(rows) == m["rows"]["traces"] == m["funnel"]["kept"] == 17
    by_bucket = {"reasoning": 0, "knowledge": 0}
    for r in rows:
        mixed = json.loads(r["meta"])["mix"]
        by_bucket[mixed["bucket"]] += 1
        runs = {"math-cot": "math-cot-math", "knowledge": "knowledge-knowledge"}
        assert mixed["source_run_id"] == runs[mixed["source_recipe"]]
        assert mixed["input"] == f"path={inputs[mixed['source_recipe'].split('-')[0]]}"
        assert r["run_id"] == m["run_id"] and r["recipe"] == "mix"  # the mix's constants
        assert json.loads(r["meta"])["index"] == int(r["gold"])  # the input's meta is kept
    assert by_bucket == {"reasoning": 12, "knowledge": 5}
    assert {r["kind"] for r in rows} == {"reasoning", "knowledge"}
    assert set(m["mix"]) >= {"unit", "seed", "max_tokens", "buckets"}
    assert set(m["mix"]["buckets"][0]) >= {
        "name",
        "target",
        "achieved",
        "available",
        "shortfall",
        "inputs",
    }
    assert m["mix"]["buckets"][0]["inputs"][0]["taken"] == 12


@pytest.mark.parametrize("target", [1, 57, 200, 333])
def test_token_targets_are_met_within_one_sample(tmp_path, inputs, target):
    recipe = load_mix_recipe(
        str(mix(tmp_path, [bucket("reasoning", target, inputs["math"])], unit="tokens"))
    )
    m = run_mix(recipe, tmp_path / "out")
    (b,) = m["mix"]["buckets"]
    rows = rows_of(tmp_path / "out")  # one bucket: the output order is the pick order
    tokens = [r["completion_tokens"] for r in rows]
    assert b["achieved"] == sum(tokens) >= target
    assert sum(tokens[:-1]) < target  # stopped at the row that reached the target
    assert b["shortfall"] == 0 and b["rows"] == len(rows)


def test_tokens_are_estimated_where_not_recorded(tmp_path, inputs):
    from filters.length import approx_tokens

    recipe = load_mix_recipe(
        str(mix(tmp_path, [bucket("all", 10_000, inputs["untracked"])], unit="tokens"))
    )
    m = run_mix(recipe, tmp_path / "out")
    (b,) = m["mix"]["buckets"]
    expected = sum(approx_tokens(r["completion"]) for r in rows_of(tmp_path / "out"))
    assert b["rows"] == 9 and b["achieved"] == b["available"] == expected > 0


def test_weights_split_the_total(tmp_path, inputs):
    path = mix(
        tmp_path,
        [
            {"name": "math", "weight": 3, "inputs": [{"path": str(inputs["math"])}]},
            {"name": "kn", "weight": 1, "inputs": [{"path": str(inputs["knowledge"])}]},
        ],
        total=10,
    )
    recipe = load_mix_recipe(str(path))
    assert recipe.mix.targets() == {"math": 8, "kn": 2}  # 7.5 / 2.5: largest remainder, sum 10
    m = run_mix(recipe, tmp_path / "out")
    assert [b["achieved"] for b in m["mix"]["buckets"]] == [8, 2]


# --- shortfall, repetition, determinism ------------------------------------------------------


def test_shortfall_is_reported_and_nothing_repeats(tmp_path, inputs):
    from factory.publish import publish

    published = tmp_path / "published"
    publish([inputs["knowledge"]], published)
    recipe = load_mix_recipe(
        str(
            mix(
                tmp_path,
                # the same 20 rows three times over: a run, the run again, a published copy
                [bucket("kn", 100, inputs["knowledge"], inputs["knowledge"], published)],
            )
        )
    )
    m = run_mix(recipe, tmp_path / "out")
    (b,) = m["mix"]["buckets"]
    assert (b["target"], b["achieved"], b["available"], b["shortfall"]) == (100, 20, 20, 80)
    assert b["duplicates"] == 40
    ids = [r["id"] for r in rows_of(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 20


def test_rows_taken_by_an_earlier_bucket_are_not_taken_again(tmp_path, inputs):
    recipe = load_mix_recipe(
        str(
            mix(
                tmp_path,
                [
                    bucket("first", 15, inputs["knowledge"]),
                    bucket("second", 15, inputs["knowledge"]),
                ],
            )
        )
    )
    m = run_mix(recipe, tmp_path / "out")
    first, second = m["mix"]["buckets"]
    assert (first["achieved"], second["achieved"], second["shortfall"]) == (15, 5, 10)
    assert second["taken_by_earlier_buckets"] == 15
    ids = [r["id"] for r in rows_of(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 20


def test_same_seed_same_rows_whatever_the_input_order(tmp_path, inputs):
    def run(tag: str, seed: int, paths: list[Path]) -> list[tuple]:
        recipe = load_mix_recipe(
            str(mix(tmp_path, [bucket("b", 25, *paths)], name=f"m{tag}", seed=seed))
        )
        run_mix(recipe, tmp_path / tag)
        return content(rows_of(tmp_path / tag))

    a = run("a", 0, [inputs["math"], inputs["knowledge"], inputs["both"]])
    again = run("again", 0, [inputs["math"], inputs["knowledge"], inputs["both"]])
    reordered = run("reordered", 0, [inputs["both"], inputs["knowledge"], inputs["math"]])
    other_seed = run("seed1", 1, [inputs["math"], inputs["knowledge"], inputs["both"]])
    assert len(a) == 25
    assert a == again == reordered  # same rows, same order
    assert {r[0] for r in other_seed} != {r[0] for r in a}
    assert len(other_seed) == 25


def test_rerun_of_the_same_mix_does_nothing(tmp_path, inputs):
    recipe = load_mix_recipe(str(mix(tmp_path, [bucket("b", 5, inputs["knowledge"])])))
    first = run_mix(recipe, tmp_path / "out")
    again = run_mix(recipe, tmp_path / "out")
    assert again["up_to_date"] and again["run_id"] == first["run_id"]
    changed = load_mix_recipe(str(mix(tmp_path, [bucket("b", 6, inputs["knowledge"])])))
    third = run_mix(changed, tmp_path / "out")
    assert "up_to_date" not in third and third["rows"]["traces"] == 6


# --- where and max_tokens ------------------------------------------------------------------


def test_where_picks_rows_per_bucket(tmp_path, inputs):
    recipe = load_mix_recipe(
        str(
            mix(
                tmp_path,
                [
                    bucket("reasoning", 100, inputs["both"], where="kind = 'reasoning'"),
                    bucket("knowledge", 4, inputs["both"], where="kind = 'knowledge'"),
                ],
            )
        )
    )
    m = run_mix(recipe, tmp_path / "out")
    r, k = m["mix"]["buckets"]
    assert (r["matched"], r["achieved"], r["shortfall"]) == (15, 15, 85)
    assert (k["matched"], k["achieved"]) == (15, 4)
    for row in rows_of(tmp_path / "out"):
        assert row["kind"] == json.loads(row["meta"])["mix"]["bucket"]


def test_a_bad_where_names_the_bucket_and_the_columns(tmp_path, inputs):
    recipe = load_mix_recipe(
        str(mix(tmp_path, [bucket("r", 3, inputs["both"], where="knd = 'reasoning'")]))
    )
    with pytest.raises(MixError, match=r"mix\.buckets\.r\.where: \"knd = 'reasoning'\"") as e:
        run_mix(recipe, tmp_path / "out")
    assert "knd" in str(e.value) and "columns: id, problem_id" in str(e.value)


def test_max_tokens_drops_long_rows_before_mixing(tmp_path, inputs):
    recipe = load_mix_recipe(str(mix(tmp_path, [bucket("r", 1000, inputs["math"])], max_tokens=30)))
    m = run_mix(recipe, tmp_path / "out")
    (b,) = m["mix"]["buckets"]
    rows = rows_of(tmp_path / "out")
    long_rows = [r for r in pq.read_table(inputs["math"] / "data").to_pylist()]
    expected_long = sum(r["completion_tokens"] > 30 for r in long_rows)
    assert expected_long > 0
    assert max(r["completion_tokens"] for r in rows) <= 30
    assert b["too_long"] == expected_long == m["rows"]["rejects"]
    assert b["achieved"] == 40 - expected_long
    rejects = duckdb.sql(
        f"SELECT stage, drop_reason, count(*) FROM read_parquet('{tmp_path}/out/rejects/*.parquet')"
        " GROUP BY ALL"
    ).fetchall()
    assert rejects == [("max_tokens", "too_long", expected_long)]


# --- inputs and their errors ---------------------------------------------------------------


def test_incompatible_schemas_name_the_columns(tmp_path, inputs):
    odd = tmp_path / "odd"
    shutil.copytree(inputs["knowledge"], odd, symlinks=True)
    for shard in (current_version(odd) / "data").glob("*.parquet"):
        table = pq.read_table(shard).drop_columns(["gold"])
        pq.write_table(table.append_column("score", table.column("source")), shard)
    recipe = load_mix_recipe(
        str(mix(tmp_path, [bucket("a", 3, inputs["math"]), bucket("b", 3, odd)]))
    )
    with pytest.raises(MixError) as e:
        run_mix(recipe, tmp_path / "out")
    msg = str(e.value)
    assert "path=" + str(odd) in msg and "cannot be mixed with" in msg
    assert "missing columns ['gold']" in msg and "extra columns ['score']" in msg
    assert not (tmp_path / "out").exists()  # failed before any work


def test_unfinished_recipe_input_names_the_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = load_mix_recipe(
        str(
            mix(
                tmp_path,
                [
                    {
                        "name": "r",
                        "target": 3,
                        "inputs": [{"recipe": "math-cot", "overrides": ["teacher.n=3"]}],
                    }
                ],
            )
        )
    )
    with pytest.raises(MixError, match=r"factory run recipe=math-cot teacher\.n=3$"):
        run_mix(recipe, tmp_path / "out")


def test_unfinished_run_directory_is_refused(tmp_path, inputs):
    half = tmp_path / "half"
    with RunDir(half):
        pass  # opened, never published: what a crashed run leaves
    recipe = load_mix_recipe(str(mix(tmp_path, [bucket("r", 3, half)])))
    with pytest.raises(MixError, match="holds no finished run yet"):
        run_mix(recipe, tmp_path / "out")
    recipe = load_mix_recipe(str(mix(tmp_path, [bucket("r", 3, tmp_path / "nowhere")])))
    with pytest.raises(MixError, match="no such folder"):
        run_mix(recipe, tmp_path / "out")


def test_finished_recipe_input_is_its_default_run(tmp_path, monkeypatch):
    from factory.pipeline import default_out, run_recipe
    from factory.recipe import load_recipe

    monkeypatch.chdir(tmp_path)
    overrides = [
        f"source.path={REPO / 'data' / 'sample-traces.jsonl'}",
        "dedup.workers=0",
        "decontaminate.enabled=false",
    ]
    source = load_recipe("reverify", overrides)
    run_recipe(source, default_out(source))
    spec = {"recipe": "reverify", "overrides": overrides}
    recipe = load_mix_recipe(str(mix(tmp_path, [{"name": "r", "target": 5, "inputs": [spec]}])))
    m = run_mix(recipe, Path("runs/mix"))
    (b,) = m["mix"]["buckets"]
    assert b["achieved"] == 5 and b["inputs"][0]["recipe_name"] == "reverify"
    # the same recipe with other settings is another run: not there yet
    spec = {"recipe": "reverify", "overrides": [*overrides, "verify.verifiers=[math]"]}
    recipe = load_mix_recipe(str(mix(tmp_path, [{"name": "r", "target": 5, "inputs": [spec]}])))
    with pytest.raises(MixError, match=r"run it first .*verify\.verifiers=\[math\]"):
        run_mix(recipe, Path("runs/mix2"))


def test_published_folder_is_an_input(tmp_path, inputs):
    from factory.publish import publish

    published = tmp_path / "pub"
    publish([inputs["math"], inputs["knowledge"]], published)
    recipe = load_mix_recipe(
        str(mix(tmp_path, [bucket("all", 50, published, where="kind = 'knowledge'")]))
    )
    m = run_mix(recipe, tmp_path / "out")
    (b,) = m["mix"]["buckets"]
    assert (b["achieved"], b["inputs"][0]["kind"]) == (20, "published")
    rows = rows_of(tmp_path / "out")
    assert {json.loads(r["meta"])["mix"]["source_recipe"] for r in rows} == {"knowledge"}
    assert rows[0]["messages"][-1]["role"] == "assistant"  # published rows are SFT-ready


@pytest.mark.parametrize(
    ("mix_block", "expected"),
    [
        ({"sed": 1, "buckets": []}, "unknown recipe key 'mix.sed' — did you mean 'seed'?"),
        (
            {"buckets": [{"name": "a", "targt": 3, "inputs": [{"path": "x"}]}]},
            "unknown recipe key 'mix.buckets[0].targt' — did you mean 'target'?",
        ),
        (
            {"unit": "token", "buckets": [{"name": "a", "target": 3, "inputs": [{"path": "x"}]}]},
            "mix.unit: bad value 'token' — did you mean 'tokens'? (allowed: 'samples', 'tokens')",
        ),
        (
            {"buckets": [{"name": "a", "target": 3, "inputs": [{"path": "x", "recipe": "y"}]}]},
            "give exactly one of 'recipe'",
        ),
        ({"buckets": [{"name": "a", "target": 3}]}, "mix.buckets.a.inputs: name at least one"),
        (
            {"total": 10, "buckets": [{"name": "a", "target": 3, "inputs": [{"path": "x"}]}]},
            "give every bucket a 'weight' and none a 'target'",
        ),
        (
            {"buckets": [{"name": "a", "weight": 3, "inputs": [{"path": "x"}]}]},
            "give every bucket a 'target'",
        ),
        (
            {
                "buckets": [
                    {"name": "a", "target": 1, "inputs": [{"path": "x"}]},
                    {"name": "a", "target": 2, "inputs": [{"path": "y"}]},
                ]
            },
            "bucket names must be unique, repeated: ['a']",
        ),
    ],
)
def test_bad_mix_recipes_fail_before_any_work(tmp_path, mix_block, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"mix": mix_block}))
    with pytest.raises(RecipeError) as e:
        load_mix_recipe(str(path))
    assert expected in str(e.value)


def test_overrides_address_buckets_by_name():
    r = load_mix_recipe("r1-mix", ["mix.buckets.reasoning.target=60", "mix.seed=7"])
    assert [(b.name, b.target) for b in r.mix.buckets] == [("reasoning", 60), ("knowledge", 2)]
    assert r.mix.seed == 7
    with pytest.raises(RecipeError, match="unknown bucket 'reasonin' — did you mean 'reasoning'"):
        load_mix_recipe("r1-mix", ["mix.buckets.reasonin.target=6"])
    assert is_mix_recipe("r1-mix") and not is_mix_recipe("math-cot")


# --- the command line: report, stats, publish --------------------------------------------------


def test_cli_mix_report_stats_and_publish_round_trip(tmp_path, inputs):
    import datasets

    out, folder = tmp_path / "out", tmp_path / "dataset"
    reasoning = json.dumps([{"path": str(inputs["math"])}])
    knowledge = json.dumps([{"path": str(inputs["knowledge"])}])
    args = [
        "run",
        "recipe=r1-mix",
        f"mix.buckets.reasoning.inputs={reasoning}",
        f"mix.buckets.knowledge.inputs={knowledge}",
        "mix.buckets.knowledge.target=30",
        "--out",
        str(out),
    ]
    done = factory_cli(*args)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout  # no ANSI when not a terminal
    lines = [
        line for line in done.stdout.splitlines() if "reasoning" in line or "knowledge" in line
    ]
    assert any("6" in line and "100.0%" in line for line in lines if "reasoning" in line)
    assert "shortfall: bucket knowledge has 20 of 30 samples (only 20 available)" in done.stdout
    again = factory_cli(*args)
    assert "up to date" in again.stdout

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["traces"] == 26
    stats = factory_cli("stats", str(out))
    assert stats.returncode == 0, stats.stderr
    assert "mix:reasoning" in stats.stdout
    query = factory_cli("query", str(out), "SELECT count(*) AS n FROM traces", "--format", "csv")
    assert query.stdout.split() == ["n", "26"]

    pub = factory_cli("publish", str(out), "--to", str(folder))
    assert pub.returncode == 0, pub.stderr
    ds = datasets.load_dataset("parquet", data_dir=str(folder / "data"), split="train")
    assert len(ds) == manifest["rows"]["traces"]
    n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{folder}/data/*.parquet')").fetchall()[0][0]
    assert n == 26


def test_shipped_recipe_names_its_inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs here
    done = factory_cli("run", "recipe=r1-mix", cwd=tmp_path)
    assert done.returncode == 2
    assert "run it first" in done.stderr and "factory run recipe=math-cot" in done.stderr
    dry = factory_cli("run", "recipe=r1-mix", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "# targets (samples): reasoning 6, knowledge 2" in dry.stdout
