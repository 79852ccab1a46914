"""The journey-math recipe end to end on a deterministic teacher (wrong and right samples of
the same problems), and on the real embedded teacher (mechanics only: SmolLM2 is weak)."""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq

from factory.pipeline import run_recipe
from factory.publish import check_published, conversation_problem, publish
from factory.recipe import load_recipe
from factory.teachers.base import Sample
from tests.helpers import problems_file


class MistakenTeacher:
    """Samples 0 and 1 of "Calculate a + b." go wrong at the addition step; samples 2 and 3
    are right. Problems with b == 5 are always right, with b == 7 always wrong."""

    model_name = "fake"

    def generate(self, requests, cfg):
        for request in requests:
            a, b = (
                int(x) for x in re.findall(r"(\d+) \+ (\d+)", request.messages[-1]["content"])[0]
            )
            wrong = b == 7 or (b != 5 and request.sample_index < 2)
            total = a + b + (1 if wrong else 0)
            text = (
                f"<think>\nWe need the sum of {a} and {b}, sample {request.sample_index}.\n"
                f"{a} + {b} = {total}\nSo the total is {total}.\n</think>\n\n"
                f"The answer is \\boxed{{{total}}}."
            )
            yield request, Sample(text, 10, 30, "stop")

    def close(self) -> None:
        pass


def _recipe(tmp_path, **extra):
    keys = {
        "source.kind": "file",
        "source.path": str(problems_file(tmp_path / "p.jsonl", 10)),
        "source.id_field": "id",
        "source.limit": "null",
        "teacher.model": "fake",
        "prompt.fewshot": "null",
        "dedup.traces.near": "false",
        "dedup.problems.near": "false",
        **extra,
    }
    return load_recipe("journey-math", [f"{k}={v}" for k, v in keys.items()])


def test_journey_math_end_to_end(tmp_path):
    m = run_recipe(
        _recipe(tmp_path, **{"journey.share": "0.4"}), tmp_path / "run", teacher=MistakenTeacher()
    )
    rows = pq.read_table(tmp_path / "run" / "data").to_pylist()
    journeys = [r for r in rows if r["kind"] == "journey"]
    plain = [r for r in rows if r["kind"] == "reasoning"]
    # 10 problems "0 + 1" … "0 + 10": b = 5 always right, b = 7 never; 8 have both
    assert len(plain) == 2 * 8 + 4  # two right samples each, four for b = 5
    assert len(journeys) == 8  # under the cap (floor(2/3 × 20) = 13): 8 problems have both
    for r in journeys:
        journey = json.loads(r["meta"])["journey"]
        sources = {x["id"]: x for x in plain}
        assert journey["right_id"] in sources and journey["wrong_id"] != journey["right_id"]
        assert journey["cut"] == "first_error"
        completion = r["completion"]
        wrong_line = f"0 + {int(r['gold'])} = {int(r['gold']) + 1}"
        assert completion.index(wrong_line) < completion.index(f"0 + {r['gold']} = {r['gold']}\n")
        assert completion.split(wrong_line, 1)[1].count("So the total is") == 1  # right path
        assert r["verdict"] == "pass" and r["answer"] == r["gold"]
        assert (
            conversation_problem(r["messages"]) is None and r["messages"][-1]["role"] == "assistant"
        )
    assert m["selection"]["journey"]["built"] == 8
    rejects = pq.read_table(tmp_path / "run" / "rejects").to_pylist()
    assert sum(r["drop_reason"] == "wrong_answer" for r in rejects) == 2 * 8 + 4

    folder = publish([tmp_path / "run"], tmp_path / "published")
    assert check_published(tmp_path / "published") == len(rows) == folder.rows


def test_journey_share_caps_rows(tmp_path):
    run_recipe(
        _recipe(tmp_path, **{"journey.share": "0.1"}), tmp_path / "run", teacher=MistakenTeacher()
    )
    rows = pq.read_table(tmp_path / "run" / "data").to_pylist()
    assert sum(r["kind"] == "journey" for r in rows) == 2  # floor(0.1 / 0.9 × 20)
    rejects = pq.read_table(tmp_path / "run" / "rejects").to_pylist()
    assert sum(r["drop_reason"] == "journey_over_share" for r in rejects) == 6


def test_journey_math_with_the_embedded_teacher(tmp_path, smollm2):
    recipe = load_recipe("journey-math", ["source.limit=6", "teacher.max_new_tokens=96"])
    m = run_recipe(recipe, tmp_path / "run", teacher=smollm2)
    report = m["selection"]["journey"]
    assert (
        report["built"] + report["unverified"] + report.get("unparsed", 0) == report["candidates"]
    )
    assert m["funnel"]["generated"] == 24
    rows = pq.read_table(tmp_path / "run" / "data").to_pylist() if m["rows"]["traces"] else []
    for r in rows:
        if r["kind"] == "journey":
            assert r["verdict"] == "pass" and "<think>" in r["completion"]
