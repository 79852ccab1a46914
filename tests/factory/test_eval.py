"""Eval metrics on hand-made outcome tables (pass@k against brute force, maj@k ties, None
answers, spellings, bootstrap intervals), and `evaluate` / `compare` through a whole run on a
deterministic teacher whose accuracy is known."""

from __future__ import annotations

import itertools
import json
import re
from math import comb

import pyarrow.parquet as pq
import pytest

from factory.eval import EvalError, compare, eval_fingerprint, eval_recipe, evaluate
from factory.eval_metrics import (
    bootstrap_interval,
    majority_correct,
    pass_at_k,
    score,
    wilson_interval,
)
from factory.teachers.base import Sample

# --- pass@k --------------------------------------------------------------------------------


def _brute_pass_at_k(n: int, c: int, k: int) -> float:
    """Share of all k-subsets of n samples (c correct) that hold a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 8))
def test_pass_at_k_matches_enumeration_over_all_subsets(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(_brute_pass_at_k(n, c, k), abs=1e-12)
            assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_edges():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0 and pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is c / n
    assert pass_at_k(10, 1, 10) == 1.0  # n - c < k: every subset holds the correct one
    assert 0.0 < pass_at_k(200, 1, 100) < 1.0  # a product, no overflow from huge binomials


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [(4, 1, 5, "1 <= k <= n"), (4, 1, 0, "1 <= k <= n"), (4, 5, 1, "c=5"), (4, -1, 1, "c=-1")],
)
def test_pass_at_k_refuses_bad_arguments(n, c, k, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        pass_at_k(n, c, k)


def test_score_refuses_k_above_the_samples_of_any_problem():
    table = {"a": [("1", True)] * 4, "b": [("1", True)] * 2}
    with pytest.raises(ValueError, match="fewest any problem has is 2"):
        score(table, ks=[1, 4])
    with pytest.raises(ValueError, match="no problems"):
        score({})
    with pytest.raises(ValueError, match="'b' has no samples"):
        score({"a": [("1", True)], "b": []})


# --- maj@k -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([("4", True), ("4", True), ("5", False)], 1.0),  # clear majority, right
        ([("5", False), ("5", False), ("4", True)], 0.0),  # clear majority, wrong
        ([("4", True), ("5", False)], 0.5),  # two-way tie: half the tied answers are right
        ([("4", True), ("5", False), ("6", False)], 1 / 3),  # three-way tie
        ([("4", True), ("4", True), ("5", False), ("5", False), ("6", False)], 0.5),
        ([("5", False), ("6", False)], 0.0),  # tie of wrong answers
        ([(None, False), (None, False), ("4", True)], 1.0),  # None does not vote
        ([(None, False), (None, False)], 0.0),  # nothing voted
        ([("0.5", True), ("1/2", True), ("\\frac{1}{2}", True), ("3", False)], 1.0),
        # unmerged, "2" would win 2 to 1; merged, one half wins 3 to 2
        ([("1/2", True), ("0.5", True), ("\\dfrac{1}{2}", True), ("2", False), ("2", False)], 1.0),
        # one spelling verified, another timed out (`error`): the answer is still right
        ([("1,000", True), ("1000", False), ("7", False)], 1.0),
    ],
)
def test_majority_correct(samples, expected):
    assert majority_correct(samples) == pytest.approx(expected)


def test_maj_at_k_votes_the_first_k_samples():
    # the first two samples tie (4 right, 5 wrong); all four: 5 wins 3 to 1
    table = {"p": [("4", True), ("5", False), ("5", False), ("5", False)]}
    result = score(table, ks=[1, 2, 4])
    assert result["maj@2"] == pytest.approx(0.5)
    assert result["maj@4"] == 0.0
    assert "maj@1" not in result
    assert result["pass@1"] == pytest.approx(0.25)
    assert result["pass@2"] == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2)
    assert result["pass@4"] == 1.0


# --- score and intervals -----------------------------------------------------------------


def _table(rates: list[tuple[int, int]]) -> dict:
    """Problems with (n samples, c correct): correct ones answer "1", wrong ones "2"."""
    return {f"p{i}": [("1", True)] * c + [("2", False)] * (n - c) for i, (n, c) in enumerate(rates)}


def test_score_means_over_problems():
    table = _table([(4, 4), (4, 2), (4, 1), (4, 0)])
    result = score(table, ks=[1, 4])
    assert result["problems"] == 4 and result["samples"] == 16
    assert result["samples_per_problem"] == 4
    assert result["pass@1"] == pytest.approx((1 + 0.5 + 0.25 + 0) / 4)
    assert result["pass@4"] == pytest.approx(3 / 4)
    assert result["maj@4"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)  # (4,2) is a tie
    assert set(result["ci"]) == {"pass@1", "pass@4", "maj@4"}
    assert "bootstrap" in result["ci_method"]


def test_bootstrap_is_deterministic_for_a_seed_and_holds_the_estimate():
    table = _table([(4, c % 5) for c in range(40)])
    a, b = score(table, ks=[1, 4], seed=3), score(table, ks=[1, 4], seed=3)
    assert a["ci"] == b["ci"]
    assert score(table, ks=[1, 4], seed=4)["ci"] != a["ci"]
    for name in ("pass@1", "pass@4", "maj@4"):
        low, high = a["ci"][name]
        assert low <= a[name] <= high and low < high
    assert bootstrap_interval([1.0] * 10) == (1.0, 1.0)  # no spread, no width
    assert bootstrap_interval([0.0, 1.0], resamples=500, seed=1) == bootstrap_interval(
        [0.0, 1.0], resamples=500, seed=1
    )


def test_wilson_interval_for_one_sample_per_problem():
    table = _table([(1, 1)] * 7 + [(1, 0)] * 3)
    result = score(table)
    low, high = result["ci"]["pass@1_wilson"]
    assert (low, high) == pytest.approx(wilson_interval(7, 10))
    assert low == pytest.approx(0.3968, abs=1e-3) and high == pytest.approx(0.8922, abs=1e-3)
    assert "pass@1_wilson" not in score(_table([(2, 1)] * 5))["ci"]  # samples not independent
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0


# --- evaluate and compare through a run -----------------------------------------------------


def _value(problem: str) -> int:
    """The exact value of an eval-arith problem ("Calculate -1 * 7 + 8.", "… problem: 42 - 18
    + 82 ="), from the procedural solver (exact, tested against reasoning-gym's golds)."""
    from fractions import Fraction

    from factory.latex import boxed_contents
    from factory.teachers.solver import solve

    return int(Fraction(boxed_contents(solve(problem))[-1]))


class ArithmeticTeacher:
    """Always right when the true value is even; otherwise sample 0 right, 1 off by one,
    2 right, 3 cut off at max_new_tokens (dropped `truncated`), 4+ off by one."""

    model_name = "fake"

    def __init__(self) -> None:
        self.asked = 0

    def generate(self, requests, cfg):
        for request in requests:
            self.asked += 1
            value = _value(request.messages[-1]["content"])
            i = request.sample_index
            right = value % 2 == 0 or i in (0, 2)
            answer = value if right else value + 1
            text = f"<think>\nAdding the terms gives {answer}.\n</think>\n\n\\boxed{{{answer}}}"
            finish = "length" if value % 2 and i == 3 else "stop"
            yield request, Sample(text, 10, 12, finish)

    def close(self) -> None:
        pass


def _expected(run_dir, k: int) -> dict[str, float]:
    golds = [int(p["gold"]) for p in pq.read_table(run_dir / "problems").to_pylist()]
    odd = sum(g % 2 for g in golds) / len(golds)
    # odd problems: 2 right of k = 4 (pass@1 0.5, pass@2 1 - 1/6); maj@4: 2 right vs 1 wrong
    return {"pass@1": 1 - odd * 0.5, "pass@2": 1 - odd / 6, "pass@4": 1.0, "maj@4": 1.0}


def test_evaluate_scores_every_sample_and_writes_lineage(tmp_path):
    overrides = ["source.limit=10"]
    out = tmp_path / "eval-a"
    result = evaluate("fake", "eval-arith", overrides, k=4, out=out, teacher=ArithmeticTeacher())
    written = json.loads((out / "scores.json").read_text())
    assert result["scores_path"] == str(out / "scores.json")
    assert written == {k: v for k, v in result.items() if k != "scores_path"}
    m = written["metrics"]
    assert m["problems"] == 10 and m["samples_per_problem"] == 4 and m["samples"] == 40
    expected = _expected(out, 4)
    assert 0 < expected["pass@1"] < 1  # the slice has both kinds of problems
    assert m["pass@1"] == pytest.approx(expected["pass@1"])
    assert m["pass@4"] == pytest.approx(expected["pass@4"])
    assert m["maj@4"] == pytest.approx(expected["maj@4"])
    odd = round((1 - expected["pass@1"]) * 2 * 10)
    assert written["outcomes"]["verdicts"] == {"fail": odd, "pass": 40 - 2 * odd}
    assert written["outcomes"]["dropped_before_verify"] == {"truncated": odd}
    lineage = written["lineage"]
    assert lineage["training"] is None and lineage["model_path"] is None  # not a folder
    assert lineage["k"] == 4 and lineage["source"]["seed"] == 9001
    assert lineage["eval_fingerprint"] == written["eval_fingerprint"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert lineage["eval_run_id"] == manifest["run_id"]
    assert lineage["run_recipe_fingerprint"] == manifest["recipe_fingerprint"]
    assert manifest["recipe"]["teacher"]["n"] == 4
    assert manifest["recipe"]["decontaminate"]["enabled"] is False

    # k = 2 is another eval: odd problems answer right then wrong, a tie (maj@2 scores 0.5)
    k2 = evaluate(
        "fake", "eval-arith", overrides, k=2, out=tmp_path / "eval-k2", teacher=ArithmeticTeacher()
    )
    assert k2["metrics"]["pass@1"] == pytest.approx(expected["pass@1"])
    assert k2["metrics"]["pass@2"] == 1.0
    assert k2["metrics"]["maj@2"] == pytest.approx(expected["pass@1"])
    assert k2["eval_fingerprint"] != result["eval_fingerprint"]
    again = ArithmeticTeacher()
    assert evaluate("fake", "eval-arith", overrides, k=4, out=out, teacher=again)["metrics"] == m
    assert again.asked == 0


def test_evaluate_writes_next_to_a_checkpoint_folder_with_its_training_record(
    tmp_path, monkeypatch
):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    train = {
        "recipe": "arith-solver",
        "recipe_fingerprint": "abc",
        "datasets": [{"path": "runs/x", "fingerprint": "f", "recipe_fingerprints": ["abc"]}],
        "base_model": "smollm2-135m-instruct",
    }
    (checkpoint / "factory_train.json").write_text(json.dumps(train))

    class FolderTeacher(ArithmeticTeacher):
        model_name = str(checkpoint.resolve())

    result = evaluate(
        str(checkpoint), "eval-arith", ["source.limit=4"], k=2, teacher=FolderTeacher()
    )
    recipe = eval_recipe(str(checkpoint), "eval-arith", ["source.limit=4"], 2)
    folder = checkpoint / "eval" / f"eval-arith-{eval_fingerprint(recipe)}"
    assert result["scores_path"] == str(folder / "scores.json")
    assert (folder / "scores.json").is_file() and (folder / "manifest.json").is_file()
    assert result["lineage"]["training"] == train
    assert result["lineage"]["model_path"] == str(checkpoint.resolve())
    # the eval fingerprint does not depend on the model: checkpoints compare on it
    assert eval_fingerprint(eval_recipe("other", "eval-arith", ["source.limit=4"], 2)) == (
        eval_fingerprint(recipe)
    )


class WeakTeacher(ArithmeticTeacher):
    """Right only on sample 0 of every problem."""

    def generate(self, requests, cfg):
        for request in requests:
            value = _value(request.messages[-1]["content"])
            answer = value if request.sample_index == 0 else value + 1
            text = (
                f"<think>\nSumming gives {answer}.\n</think>\n\nThe answer is \\boxed{{{answer}}}."
            )
            yield request, Sample(text, 10, 5, "stop")


def test_compare_two_evaluations(tmp_path):
    overrides = ["source.limit=8"]
    a = evaluate("fake", "eval-arith", overrides, k=4, out=tmp_path / "a", teacher=WeakTeacher())
    b = evaluate(
        "fake", "eval-arith", overrides, k=4, out=tmp_path / "b", teacher=ArithmeticTeacher()
    )
    assert a["metrics"]["pass@1"] == pytest.approx(0.25) and a["metrics"]["maj@4"] == 0.0
    rows = compare(tmp_path / "a" / "scores.json", tmp_path / "b")  # a file or a run dir
    by_metric = {r.metric: r for r in rows}
    assert list(by_metric) == ["pass@1", "pass@4", "maj@4"]
    for name, row in by_metric.items():
        assert row.a == a["metrics"][name] and row.b == b["metrics"][name]
        assert row.delta == pytest.approx(row.b - row.a)
        assert row.a_ci == tuple(a["metrics"]["ci"][name])
    assert by_metric["maj@4"].delta == pytest.approx(1.0)
    assert by_metric["maj@4"].ci_overlap is False  # [0, 0] against [1, 1]
    assert by_metric["pass@4"].ci_overlap is True  # both 1.0

    evaluate(
        "fake", "eval-arith", ["source.limit=3"], k=4, out=tmp_path / "c", teacher=WeakTeacher()
    )
    with pytest.raises(EvalError, match="no evaluation of the same eval"):
        compare(tmp_path / "a", tmp_path / "c")
    with pytest.raises(EvalError, match="no scores.json"):
        compare(tmp_path / "a", tmp_path / "nowhere")
