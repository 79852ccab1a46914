from __future__ import annotations

import pytest

from filters.select import Sample, canonical, in_window, majority_vote, pass_rate, pick


def _table(*rows: tuple[str, str | None, str | None, int]) -> list[Sample]:
    return [Sample(id, "p1", verdict, answer, length) for id, verdict, answer, length in rows]


TABLE = _table(
    ("s0", "pass", "4", 300),
    ("s1", "fail", "5", 50),
    ("s2", "pass", "4.0", 120),
    ("s3", "pass", "\\boxed{7}", 90),
    ("s4", "pass", "4", 120),
    ("s5", None, None, 10),
)


@pytest.mark.parametrize(
    ("policy", "k", "expected"),
    [
        ("shortest", 2, ["s3", "s2"]),  # 90, then the 120s by id
        ("longest", 2, ["s0", "s2"]),
        ("majority", 3, ["s2", "s4", "s0"]),  # "4" has 3 votes; shortest first, ties by id
        ("shortest", 10, ["s3", "s2", "s4", "s0"]),  # never a failed sample, never more
    ],
)
def test_pick_policies(policy, k, expected):
    assert [s.id for s in pick(TABLE, k, policy)] == expected


def test_random_is_seeded_by_problem_and_seed():
    first = [s.id for s in pick(TABLE, 2, "random", seed=1)]
    assert first == [s.id for s in pick(list(reversed(TABLE)), 2, "random", seed=1)]
    assert {s.id for s in pick(TABLE, 4, "random", seed=1)} == {"s0", "s2", "s3", "s4"}
    seen = {tuple(s.id for s in pick(TABLE, 2, "random", seed=seed)) for seed in range(20)}
    assert len(seen) > 1  # other seeds pick others


def test_unknown_policy_is_named():
    with pytest.raises(ValueError, match="allowed: shortest"):
        pick(TABLE, 1, "best")  # type: ignore[arg-type]


def test_pass_rate_window():
    assert pass_rate(TABLE) == pytest.approx(4 / 6)
    assert pass_rate([]) == 0.0
    assert in_window(0.1, 0.1, 0.6) and in_window(0.6, 0.1, 0.6)
    assert not in_window(4 / 6, 0.1, 0.6) and not in_window(0.0, 0.1, 0.6)


def test_canonical_keys():
    assert canonical(" $\\boxed{4.0}$ ") == canonical("4") == "4"
    assert canonical("\\dfrac{1}{2}") == canonical("0.5") == canonical("1/2") == "1/2"
    assert canonical("1,000") == "1000"
    assert canonical("x+1") == "x+1" and canonical(None) is None


def test_majority_vote_threshold_and_ties():
    assert majority_vote(["4", "4.0", "5", "4"], 0.5) == ("4", 0.75)
    assert majority_vote(["4", "4.0", "5", "4"], 0.8) == (None, 0.75)  # below min share
    assert majority_vote(["4", "5", "4", "5"], 0.1) == (None, 0.5)  # tie for first: no label
    assert majority_vote(["4", "5", "4", "5", "6", "4"], 0.5) == ("4", 0.5)
    assert majority_vote([None, None, "3"], 0.3) == ("3", pytest.approx(1 / 3))  # None votes count
    assert majority_vote([], 0.5) == (None, 0.0)
    assert majority_vote([None], 0.5) == (None, 0.0)
