"""`factory diff A B`: two runs that differ in one recipe key (trace dedup on / off) — the diff
names that key with its old and new values and gives the funnel and drop deltas exactly."""

from __future__ import annotations

import re

import pytest

from factory.diff_runs import MISSING, changed_keys, diff_runs, flatten
from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from factory.teachers.base import Sample
from tests.helpers import factory, file_overrides, problems_file


class TwinTeacher:
    """ "Calculate a + b.": for even b both samples are right and word for word the same (an
    exact duplicate); for odd b sample 0 is right and sample 1 one too many."""

    model_name = "fake"

    def generate(self, requests, cfg):
        for request in requests:
            a, b = (
                int(x) for x in re.findall(r"(\d+) \+ (\d+)", request.messages[-1]["content"])[0]
            )
            twin = b % 2 == 0
            answer = a + b if twin or request.sample_index == 0 else a + b + 1
            who = "" if twin else f" (sample {request.sample_index})"
            text = (
                f"<think>\nAdding {a} and {b}{who} gives {answer}.\n</think>\n\n\\boxed{{{answer}}}"
            )
            yield request, Sample(text, 10, 12, "stop")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Six problems (b = 1…6), two samples each; A dedups traces exactly, B does not."""
    tmp = tmp_path_factory.mktemp("diff")
    problems = problems_file(tmp / "p.jsonl", 6)
    out = {}
    for name, exact in (("a", "true"), ("b", "false")):
        keys = {
            "teacher.n": "2",
            "dedup.problems.near": "false",
            "dedup.traces.near": "false",
            "dedup.traces.exact": exact,
            "decontaminate.enabled": "false",
        }
        overrides = file_overrides(problems, **keys)
        recipe = load_recipe("math-cot", overrides)
        run_recipe(recipe, tmp / name, teacher=TwinTeacher())
        out[name] = tmp / name
    return out["a"], out["b"]


def test_the_changed_key_and_the_funnel_deltas(runs):
    a, b = runs
    d = diff_runs(a, b)
    assert d["recipe"]["changed"] == [{"key": "dedup.traces.exact", "a": True, "b": False}]
    assert not d["recipe"]["same"]
    assert d["recipe"]["fingerprint_a"] != d["recipe"]["fingerprint_b"]
    funnel = {r["step"]: r for r in d["funnel"]}
    assert list(funnel) == ["problems", "generated", "parsed", "verified", "deduped", "kept"]
    assert {s: (r["a"], r["b"], r["delta"]) for s, r in funnel.items()} == {
        "problems": (6, 6, 0),
        "generated": (12, 12, 0),
        "parsed": (12, 12, 0),
        "verified": (9, 9, 0),
        "deduped": (6, 9, 3),  # three exact twins removed in A only
        "kept": (6, 9, 3),
    }
    assert (funnel["kept"]["share_a"], funnel["kept"]["share_b"]) == (0.5, 0.75)
    assert funnel["kept"]["share_delta"] == 0.25 and funnel["problems"]["share_a"] is None
    drops = {(r["stage"], r["reason"]): (r["a"], r["b"], r["delta"]) for r in d["drop_reasons"]}
    assert drops == {
        ("verify", "wrong_answer"): (3, 3, 0),
        ("dedup_traces", "duplicate_exact"): (3, 0, -3),
    }
    [source] = d["by_source"]
    assert (source["kept_a"], source["kept_b"], source["acceptance_delta"]) == (6, 9, 0.25)
    per_kept = {r["measure"]: r for r in d["per_kept_trace"]}
    assert per_kept["teacher model"]["a"] == per_kept["teacher model"]["b"] == "fake"
    assert per_kept["teacher completion tokens"]["a"] == 12 * 12
    assert (
        per_kept["teacher completion tokens per kept trace"]["a"],
        per_kept["teacher completion tokens per kept trace"]["b"],
    ) == (24.0, 16.0)
    assert per_kept["teacher completion tokens per kept trace"]["delta"] == -8.0
    levels = {(r["level"], r["measure"]): (r["a"], r["b"]) for r in d["dedup"]}
    assert levels[("traces", "exact dups")] == (3, None)  # B has no trace dedup stage
    assert levels[("problems", "rows")] == (6, 6)


def test_a_run_against_itself_differs_in_nothing(runs):
    d = diff_runs(runs[0], runs[0])
    assert d["recipe"]["same"] and d["recipe"]["changed"] == []
    assert all(r["delta"] == 0 for r in d["funnel"] + d["drop_reasons"])


def test_recipe_keys_flatten_to_dotted_paths():
    a = {"teacher": {"n": 2, "seed": 0}, "verify": {"verifiers": ["math"]}, "x": {}}
    b = {"teacher": {"n": 4, "seed": 0}, "verify": {"verifiers": ["math", "judge"]}, "y": 1}
    assert flatten(a) == {"teacher.n": 2, "teacher.seed": 0, "verify.verifiers": ["math"], "x": {}}
    assert changed_keys(a, b) == [
        {"key": "teacher.n", "a": 2, "b": 4},
        {"key": "verify.verifiers", "a": ["math"], "b": ["math", "judge"]},
        {"key": "x", "a": {}, "b": MISSING},
        {"key": "y", "a": MISSING, "b": 1},
    ]


def test_the_command_prints_the_tables_in_plain_text(runs):
    a, b = runs
    shown = factory("diff", str(a), str(b))
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "\x1b[" not in out
    cells = r"\s*│\s*"
    assert re.search(
        cells.join(["kept", "6", "9", r"\+3", r"50\.0%", r"75\.0%", r"\+25\.0 pp"]), out
    )
    assert re.search(cells.join(["deduped", "6", "9", r"\+3"]), out)
    assert re.search(cells.join(["problems", "6", "6", "0"]), out)
    assert re.search(cells.join(["dedup_traces", "duplicate_exact", "3", "0", "-3"]), out)
    assert re.search(r"1 key\(s\) differ", out)
    assert re.search(cells.join(["dedup.traces.exact", "True", "False"]), out)
    for title in ("funnel", "acceptance by source", "drop reasons", "teacher, tokens, cost, time"):
        assert title in out
    missing = factory("diff", str(a), str(a.parent / "nope"))
    assert missing.returncode == 2 and "not a finished factory run directory" in missing.stderr
