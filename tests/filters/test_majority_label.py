"""Majority-vote pseudo-labels through a whole run: problems without gold are labelled by the
samples' most common answer (spelling-insensitive), ties and thin majorities get no label, and
problems with gold are left alone."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from factory.teachers.base import Sample

# per problem: the answers its four samples give (gold None unless named)
ANSWERS = {
    "q0": ["7", "7.0", "8", "7"],  # 3 of 4 agree → label 7, three samples verify
    "q1": ["3", "4", "3", "4"],  # tie → no label
    "q2": ["1", "2", "3", "5"],  # 1/4 < min share 0.5 → no label
    "q3": ["\\frac{1}{2}", "0.5", "1/2", "2"],  # one answer in three spellings
    "q4": ["9", "9", "9", "9"],  # has gold 10: the vote does not touch it
}


class VotingTeacher:
    model_name = "fake"

    def generate(self, requests, cfg):
        for request in requests:
            pid = request.messages[-1]["content"].split("#")[1].split()[0]
            answer = ANSWERS[pid][request.sample_index]
            text = f"<think>\nWorking on {pid}, try {request.sample_index}.\n</think>\n\n\\boxed{{{answer}}}"
            yield request, Sample(text, 5, 9, "stop")

    def close(self) -> None:
        pass


def test_majority_vote_labels_problems_without_gold(tmp_path):
    rows = [
        {"id": pid, "question": f"Problem #{pid} here.", "answer": "10" if pid == "q4" else None}
        for pid in ANSWERS
    ]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    keys = {
        "source.kind": "file",
        "source.path": str(path),
        "source.id_field": "id",
        "source.limit": "null",
        "teacher.model": "fake",
        "teacher.n": "4",
        "prompt.fewshot": "null",
        "dedup.problems.near": "false",
        "dedup.traces.near": "false",
        "decontaminate.enabled": "false",
        "select.majority_vote.enabled": "true",
        "select.majority_vote.min_share": "0.5",
    }
    recipe = load_recipe("math-cot", [f"{k}={v}" for k, v in keys.items()])
    m = run_recipe(recipe, tmp_path / "run", teacher=VotingTeacher())
    kept = pq.read_table(tmp_path / "run" / "data").to_pylist()
    rejects = pq.read_table(tmp_path / "run" / "rejects").to_pylist()
    by_problem = {}
    for r in kept:
        by_problem.setdefault(r["problem_id"].split(":")[-1], []).append(r)
    assert sorted(len(v) for v in by_problem.values()) == [3, 3]
    assert set(by_problem) == {"q0", "q3"}  # q4's samples all say 9, its gold is 10
    assert {r["gold"] for r in by_problem["q0"]} == {"7"}
    assert {r["gold"] for r in by_problem["q3"]} == {"\\frac{1}{2}"}  # first spelling wins
    assert all(r["pseudo_label"] for r in kept)
    assert json.loads(by_problem["q0"][0]["meta"])["majority"] == {"share": 0.75, "votes": 4}
    reasons = {(r["problem_id"].split(":")[-1], r["drop_reason"]) for r in rejects}
    assert ("q1", "no_majority") in reasons and ("q2", "no_majority") in reasons
    assert ("q4", "wrong_answer") in reasons
    q4 = [r for r in rejects if r["problem_id"].endswith("q4")]
    assert all(r["gold"] == "10" and not r["pseudo_label"] for r in q4)
    assert m["selection"]["majority_vote"] == {
        "problems_without_gold": 4,
        "labelled": 2,
        "no_majority": 2,
    }
    names = [s["name"] for s in m["stages"]]
    assert "has_gold" not in names and names.index("majority_vote") < names.index("verify")
