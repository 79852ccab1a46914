"""`factory run recipe=knowledge`: direct answers to the bundled general-knowledge questions.

A scripted teacher answers each question in a known way (right, right twice in other words,
wrong, in another script, too long, cut off), so the funnel and every drop reason are known
exactly; then the real embedded SmolLM2 runs the recipe on 8 questions and the mechanics are
checked (SmolLM2-135M is weak: what it gets right is not asserted)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq

from factory.pipeline import run_recipe
from factory.query import query
from factory.recipe import load_recipe
from factory.teachers.base import Sample

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = REPO / "data" / "knowledge-questions.jsonl"


class ScriptedTeacher:
    """Answers question i of the file by behaviour i % 6 (see `reply`)."""

    model_name = "fake"

    def __init__(self) -> None:
        rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines()]
        self.by_question = {
            r["question"]: (i, r["answer"].split("|")[0]) for i, r in enumerate(rows)
        }

    def reply(self, question: str, sample: int) -> tuple[str, int, str]:
        i, gold = self.by_question[question]
        behaviour = i % 6
        if behaviour == 0:  # right, the same words both times: one is a duplicate
            return f"{gold}.", 3, "stop"
        if behaviour == 1:  # right, in two phrasings: both kept
            return (gold if sample == 0 else f"It is {gold}."), 5, "stop"
        if behaviour == 2:
            return "I am not sure, maybe Lisbon.", 8, "stop"
        if behaviour == 3:  # another script than the question's
            return "Это столица страны.", 6, "stop"
        if behaviour == 4:  # right, but no direct answer
            return f"{gold}, which has a long and interesting history. " * 6, 60, "stop"
        if sample == 0:
            return f"{gold} is the capital of", 64, "length"
        return f"<think>\nI recall it.\n</think>\n\n{gold}", 9, "stop"

    def generate(self, requests, cfg):
        for request in requests:
            question = request.messages[-1]["content"]
            text, tokens, finish = self.reply(question, request.sample_index)
            yield request, Sample(text, 20, tokens, finish)

    def close(self) -> None:
        """Holds nothing."""


def test_knowledge_funnel_and_drop_reasons(tmp_path):
    recipe = load_recipe(
        "knowledge", [f"source.path={QUESTIONS}", "source.limit=12", "teacher.model=fake"]
    )
    out = tmp_path / "k"
    m = run_recipe(recipe, out, teacher=ScriptedTeacher())
    assert m["funnel"] == {
        "problems": 12,
        "generated": 24,
        "parsed": 22,
        "verified": 10,
        "deduped": 8,
        "kept": 8,
    }
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert Counter((r["stage"], r["drop_reason"]) for r in rejects) == {
        ("parse", "truncated"): 2,
        ("length", "too_long"): 4,
        ("language", "language_mixed"): 4,
        ("verify", "reference_mismatch"): 4,
        ("dedup_traces", "duplicate_exact"): 2,
    }
    mismatched = [r for r in rejects if r["drop_reason"] == "reference_mismatch"]
    assert {r["verdict"] for r in mismatched} == {"fail"}

    traces = pq.read_table(out / "data").to_pylist()
    assert len(traces) == 8
    for row in traces:
        assert row["verdict"] == "pass"
        assert row["verdicts"] == [
            {"verifier": "reference", "verdict": "pass", "reason": "reference_match"}
        ]
        assert [msg["role"] for msg in row["messages"]] == ["system", "user", "assistant"]
        assistant = row["messages"][-1]["content"]
        assert assistant == f"<think>\n{row['reasoning']}\n</think>\n\n{row['answer']}"
        assert json.loads(row["meta"])["language_share"] == 1.0
    no_think = [r for r in traces if r["reasoning"] == ""]
    assert len(no_think) == 6  # the empty block of a direct answer
    assert all(r["messages"][-1]["content"].startswith("<think>\n\n</think>\n\n") for r in no_think)
    assert sorted(r["answer"] for r in traces if r["reasoning"]) == ["Cairo", "Mount Everest"]
    # the `kind` column names the data: knowledge rows, kept and dropped alike
    assert {r["kind"] for r in traces + rejects} == {"knowledge"}


def test_knowledge_recipe_with_smollm2(tmp_path, smollm2, model_cache):
    recipe = load_recipe(
        "knowledge",
        [f"source.path={QUESTIONS}", "source.limit=8", f"teacher.cache_dir={model_cache}"],
    )
    out = tmp_path / "k"
    m = run_recipe(recipe, out, teacher=smollm2)
    f = m["funnel"]
    assert f["problems"] == 8 and f["generated"] == 16
    assert f["generated"] >= f["parsed"] >= f["verified"] >= f["deduped"] == f["kept"]
    stages = {s["name"]: s for s in m["stages"]}
    for name in ("parse", "length", "language", "verify", "dedup_traces"):
        assert (
            stages[name]["inputs"] - sum(stages[name]["drops"].values()) == stages[name]["outputs"]
        )
    assert m["rows"]["traces"] == f["kept"] and m["rows"]["problems"] == 8
    assert m["rows"]["rejects"] == sum(sum(s["drops"].values()) for s in m["stages"])

    cols, rows = query(out, "SELECT * FROM traces")
    for values in rows:
        row = dict(zip(cols, values, strict=True))
        assert row["kind"] == "knowledge" and row["recipe"] == "knowledge"
        assert row["verdicts"][0]["reason"] == "reference_match" and row["answer"]
        assistant = row["messages"][-1]["content"]
        assert assistant.count("<think>") == assistant.count("</think>") == 1
        assert assistant.endswith(row["answer"])
    allowed = {
        "truncated", "empty", "no_answer", "malformed_think", "unclosed_think", "too_short",
        "too_long", "language_mixed", "reference_mismatch", "duplicate_exact", "duplicate_near",
    }  # fmt: skip
    _, reasons = query(out, "SELECT DISTINCT drop_reason FROM rejects")
    assert {r for (r,) in reasons} <= allowed
