"""Adaptive sampling and rejection sampling through a whole run, on a deterministic teacher:
easy problems stop after one round, hard ones get more, the budget caps every problem, a
resumed run replays the same rounds, and selection keeps k per problem in the window."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest

from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from factory.teachers.base import Sample
from tests.helpers import factory, file_overrides, problems_file


class ArithmeticTeacher:
    """Answers "Calculate a + b." right on every sample when a is even (easy), and only on
    sample indices 3, 7, 11, … when a is odd (hard); b == 13 is never solved."""

    model_name = "fake"

    def __init__(self) -> None:
        self.asked: dict[str, list[int]] = {}

    def generate(self, requests, cfg):
        for request in requests:
            problem = request.messages[-1]["content"]
            a, b = (int(x) for x in re.findall(r"(\d+) \+ (\d+)", problem)[0])
            self.asked.setdefault(f"{a}+{b}", []).append(request.sample_index)
            right = b != 13 and (a % 2 == 0 or request.sample_index % 4 == 3)
            answer = a + b if right else a + b + 1
            text = (
                f"<think>\nSample {request.sample_index}: adding {a} and {b} step by step "
                f"gives {answer}.\n</think>\n\nThe answer is \\boxed{{{answer}}}."
            )
            yield request, Sample(text, 10, 20 + request.sample_index, "stop")

    def close(self) -> None:
        pass


def _recipe(tmp_path, count=8, **extra):
    keys = {
        "teacher.n": "2",
        "dedup.problems.exact": "false",
        "dedup.problems.near": "false",
        "dedup.traces.exact": "false",
        "dedup.traces.near": "false",
        "decontaminate.enabled": "false",
        "select.enabled": "true",
        **extra,
    }
    overrides = file_overrides(problems_file(tmp_path / "p.jsonl", count), **keys)
    return load_recipe("math-cot", overrides)


def _rows(out, table="data"):
    return pq.read_table(out / table).to_pylist()


def test_adaptive_sampling_spends_less_on_easy_problems(tmp_path):
    # problems q0…q109 are "Calculate a + b." with a = i // 50: a = 1 (q50…q99) is hard
    recipe = _recipe(
        tmp_path,
        count=110,
        **{"select.adaptive.enabled": "true", "select.adaptive.max_samples": "8"},
    )
    teacher = ArithmeticTeacher()
    m = run_recipe(recipe, tmp_path / "run", teacher=teacher)
    easy = {k: v for k, v in teacher.asked.items() if int(k.split("+")[0]) % 2 == 0}
    hard = {k: v for k, v in teacher.asked.items() if int(k.split("+")[0]) % 2 == 1}
    never = {k: v for k, v in teacher.asked.items() if k.endswith("+13")}
    assert easy and hard and never
    assert all(v == [0, 1] for k, v in easy.items() if k not in never)  # one round, then done
    assert all(v == [0, 1, 2, 3] for k, v in hard.items() if k not in never)  # index 3 passes
    assert all(v == list(range(8)) for v in never.values())  # the budget caps it
    adaptive = m["selection"]["adaptive"]
    assert adaptive["samples_asked"] == sum(len(v) for v in teacher.asked.values())
    assert adaptive["samples_asked"] < adaptive["samples_without_adaptive"]
    assert adaptive["stopped_by_budget"] == len(never)
    assert adaptive["rounds"][0]["problems"] == 110
    rows = _rows(tmp_path / "run")
    assert len(rows) == 110 - len(never)  # k = 1 per solved problem
    metas = [json.loads(r["meta"]) for r in rows]
    hard_ids = {f"q{i}" for i in range(110) if (i // 50) % 2 == 1 and i % 50 + 1 != 13}
    hard_rows = [
        m_ for r, m_ in zip(rows, metas, strict=True) if r["problem_id"].split(":")[-1] in hard_ids
    ]
    assert hard_rows and all(m_["samples"] == 4 and m_["pass_rate"] == 0.25 for m_ in hard_rows)
    select = m["selection"]["select"]
    assert select["samples_generated"] == adaptive["samples_asked"]
    assert select["samples_per_kept_trace"] == pytest.approx(
        adaptive["samples_asked"] / len(rows), abs=1e-3
    )
    # funnel and stage table list the inner stages, not the wrapper
    names = [s["name"] for s in m["stages"]]
    assert "generate" in names and "verify" in names and "rounds" not in names
    assert m["funnel"]["generated"] == adaptive["samples_asked"]

    # resume: the same rounds from stored samples, nothing asked, same rows
    again = ArithmeticTeacher()
    recipe.output.shard_rows = 7  # an output-only change: republish
    m2 = run_recipe(recipe, tmp_path / "run", teacher=again)
    assert again.asked == {} and m2["teacher"]["requested"] == 0
    assert sorted(r["id"] for r in _rows(tmp_path / "run")) == sorted(r["id"] for r in rows)


def test_selection_window_and_k(tmp_path):
    # n = 4 without adaptive: easy problems pass 4/4 (rate 1.0), hard 1/4, b == 13 0/4
    recipe = _recipe(
        tmp_path,
        count=110,
        **{"teacher.n": "4", "select.k": "2", "select.pass_rate": "[0.1, 0.6]"},
    )
    m = run_recipe(recipe, tmp_path / "run", teacher=ArithmeticTeacher())
    rows = _rows(tmp_path / "run")
    rejects = _rows(tmp_path / "run", "rejects")
    reasons = {}
    for r in rejects:
        reasons[r["drop_reason"]] = reasons.get(r["drop_reason"], 0) + 1
    hard = [i for i in range(110) if (i // 50) % 2 == 1 and i % 50 + 1 != 13]
    easy = [i for i in range(110) if (i // 50) % 2 == 0 and i % 50 + 1 != 13]
    assert len(rows) == len(hard)  # each hard problem has one verified sample (k=2 → 1)
    assert all(json.loads(r["meta"])["pass_rate"] == 0.25 for r in rows)
    assert reasons["pass_rate_above_window"] == 4 * len(easy)
    assert "not_selected" not in reasons
    s = m["selection"]["select"]
    assert s["problems_above_window"] == len(easy) and s["problems_kept"] == len(hard)
    assert s["problems_unsolved"] == 2  # 0+13 and 1+13 are never solved
    assert s["pass_rate_histogram"]["1.0"] == len(easy)
    shown = factory("stats", str(tmp_path / "run"))
    assert shown.returncode == 0, shown.stderr
    assert "selection: select" in shown.stdout and "problems_above_window" in shown.stdout


def test_selection_keeps_k_shortest(tmp_path):
    recipe = _recipe(tmp_path, count=4, **{"teacher.n": "4", "select.k": "2"})
    run_recipe(recipe, tmp_path / "run", teacher=ArithmeticTeacher())
    rows = _rows(tmp_path / "run")
    assert len(rows) == 8  # 4 easy problems (a = 0), 2 each
    assert sorted({r["sample_index"] for r in rows}) == [0, 1]  # shortest: 20 + index tokens
    rejects = _rows(tmp_path / "run", "rejects")
    assert sorted(r["sample_index"] for r in rejects if r["drop_reason"] == "not_selected") == [
        2,
        2,
        2,
        2,
        3,
        3,
        3,
        3,
    ]
