"""Benchmark decontamination (issue 5's n-gram check): planted GSM8K test, MATH-500 and AIME
2024 items, verbatim and lightly edited, are caught with their evidence; clean problems are
not; hostile text does not crash; a run reports hits per benchmark and never generates for a
leaked problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.recipe import load_recipe
from filters.decontaminate import BenchmarkIndex, Decontaminate, words
from tests.factory.teachers.fault_server import FaultServer
from tests.helpers import loopback_overrides, trace

CLEAN = [
    "A gardener plants 14 rows of tulips with 9 bulbs in each row and later removes 11 bulbs "
    "that did not sprout. How many tulips remain in the garden?",
    "Let f be a function on the positive integers with f(1) = 3 and f(n + 1) = 2 f(n) - 1 for "
    "every n. Compute the remainder when f(20) is divided by 7.",
    "A cyclist rides uphill at 12 kilometres per hour and back down the same road at 20 "
    "kilometres per hour. What is her average speed for the round trip?",
]


def _rows(shared: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (shared / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def index(shared_data):
    index = BenchmarkIndex(8)
    index.add_file("gsm8k_test", shared_data / "gsm8k/test.jsonl", "question", None)
    index.add_file("math500", shared_data / "math500/test.jsonl", "problem", None)
    index.add_file("aime2024", shared_data / "aime2024/test.jsonl", "problem", "id")
    return index


def _planted(shared: Path) -> list[tuple[str, str, str]]:
    """(text, benchmark, item) for copies of benchmark items, verbatim and lightly edited."""
    gsm = _rows(shared, "gsm8k/test.jsonl")
    m500 = _rows(shared, "math500/test.jsonl")
    aime = _rows(shared, "aime2024/test.jsonl")
    edited = gsm[10]["question"].upper().replace(",", " ,").replace("  ", " ")
    return [
        (gsm[0]["question"], "gsm8k_test", "0"),
        (edited, "gsm8k_test", "10"),
        ("Solve this: " + gsm[100]["question"] + " Show your work.", "gsm8k_test", "100"),
        (m500[5]["problem"], "math500", "5"),
        (m500[200]["problem"].replace("$", " $ ").replace("\\", " \\"), "math500", "200"),
        (aime[3]["problem"].replace(" ", "  "), "aime2024", str(aime[3]["id"])),
    ]


def test_planted_items_are_caught_with_their_evidence(index, shared_data):
    for text, benchmark, item in _planted(shared_data):
        hit = index.find(text)
        assert hit is not None and (hit["benchmark"], hit["item"]) == (benchmark, item), text
        assert len(hit["ngram"].split()) == 8 and hit["ngram"] in " ".join(words(text))


def test_clean_problems_and_hostile_text_pass(index):
    for text in [*CLEAN, "", None, "x" * 10_000_000, "😀 " * 1000, "\ud800 ab", "数学 " * 50]:
        assert index.find(text) is None


def test_the_stage_drops_with_the_benchmark_in_the_reason(index, shared_data):
    stage = Decontaminate(index, ["completion"], "traces")
    leaked = trace("<think>" + _planted(shared_data)[3][0] + "</think> 4")
    assert stage.process(leaked).reason == "contaminated:math500"
    assert leaked.meta["contamination"]["field"] == "completion"
    assert stage.process(trace("<think>" + CLEAN[0] + "</think> 115")) is not None
    assert stage.report()["hits"] == {"math500": 1}


def test_a_run_never_generates_for_a_leaked_problem(tmp_path, shared_data):
    from factory.pipeline import run_recipe

    planted = _planted(shared_data)
    rows = [{"id": f"leak{i}", "question": t, "answer": "1"} for i, (t, _, _) in enumerate(planted)]
    rows += [{"id": f"clean{i}", "question": t, "answer": "1"} for i, t in enumerate(CLEAN)]
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    benchmarks = (
        f"[{{name: gsm8k_test, path: {shared_data}/gsm8k/test.jsonl, text_field: question}}, "
        f"{{name: math500, path: {shared_data}/math500/test.jsonl}}, "
        f"{{name: aime2024, path: {shared_data}/aime2024/test.jsonl, id_field: id}}]"
    )
    with FaultServer() as server:
        recipe = load_recipe(
            "math-cot",
            [
                *loopback_overrides(server.url, problems),
                "teacher.n=1",
                "dedup.problems.near=false",
                "decontaminate.enabled=true",
                f"decontaminate.benchmarks={benchmarks}",
            ],
        )
        m = run_recipe(recipe, tmp_path / "run")
        asked = sum(server.requests.values())
    assert asked == len(CLEAN)  # no teacher time on leaked problems
    report = m["decontamination"]
    assert report["benchmarks"] == {"gsm8k_test": 1319, "math500": 500, "aime2024": 30}
    assert report["problems"]["hits"] == {"gsm8k_test": 3, "math500": 2, "aime2024": 1}
    drops = {s["name"]: s["drops"] for s in m["stages"]}["decontaminate_problems"]
    assert drops == {
        "contaminated:gsm8k_test": 3,
        "contaminated:math500": 2,
        "contaminated:aime2024": 1,
    }


def test_a_missing_benchmark_file_is_named(tmp_path):
    from factory.errors import ProblemSourceError

    index = BenchmarkIndex(8)
    with pytest.raises(ProblemSourceError, match="benchmark 'x' file not found"):
        index.add_file("x", tmp_path / "nope.jsonl", "problem", None)
