from __future__ import annotations

import random

from factory.recipe import DedupLevel, TraceDedupLevel
from factory.record import Record
from factory.stage import Drop, chain
from filters.dedup_exact import ExactDedup, normalize
from filters.dedup_minhash import NearDedup, shingles

WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "was",
    "on",
    "be",
    "by",
    "at",
    "this",
    "are",
    "from",
    "or",
    "an",
]


def _text(seed: int, n: int = 80) -> str:
    rng = random.Random(seed)
    return " ".join(f"{rng.choice(WORDS)}{rng.randint(0, 999)}" for _ in range(n))


def _problem(i: int, text: str) -> Record:
    return Record(problem_id=f"p{i}", source="s", problem=text, gold="1")


def _run(stage, records):
    drops = []
    stream, _ = chain(records, [stage], lambda r, s, d: drops.append((r.problem_id, d)))
    return list(stream), drops


def test_normalize():
    assert normalize("  The\tAnswer\n IS  Ⅻ ") == "the answer is xii"


def test_exact_dedup_keeps_first_and_names_its_cluster():
    records = [
        _problem(0, "What is 2+2?"),
        _problem(1, "what  is 2+2?"),
        _problem(2, "What is 2+3?"),
    ]
    kept, drops = _run(ExactDedup(DedupLevel(), "problems"), records)
    assert [r.problem_id for r in kept] == ["p0", "p2"]
    assert [r.dedup_cluster for r in kept] == ["p0", "p2"]
    assert drops == [("p1", Drop("duplicate_exact", cluster="p0"))]


def test_exact_dedup_of_traces_uses_the_configured_fields():
    def trace(i, problem, completion):
        return Record(
            problem_id=f"p{i}",
            source="s",
            problem=problem,
            gold="1",
            id=f"t{i}",
            completion=completion,
        )

    records = [trace(0, "A", "same"), trace(1, "B", "same"), trace(2, "A", "same")]
    kept, drops = _run(ExactDedup(TraceDedupLevel(), "traces"), records)  # problem + completion
    assert [r.id for r in kept] == ["t0", "t1"]
    assert drops == [("p2", Drop("duplicate_exact", cluster="t0"))]
    kept, _ = _run(ExactDedup(TraceDedupLevel(fields=["completion"]), "traces"), records)
    assert [r.id for r in kept] == ["t0"]


def test_near_duplicates_are_found_and_different_texts_kept():
    base = [_text(i) for i in range(30)]
    near = []
    for text in base[:10]:  # third-to-last word changed: Jaccard 73/79 = 0.92
        words = text.split()
        words[-3] = "changed"
        near.append(" ".join(words))
    records = [_problem(i, t) for i, t in enumerate(base)] + [
        _problem(100 + i, t) for i, t in enumerate(near)
    ]
    kept, drops = _run(NearDedup(DedupLevel(threshold=0.8), "problems"), records)
    assert [r.problem_id for r in kept] == [f"p{i}" for i in range(30)]
    assert sorted(drops) == sorted(
        (f"p{100 + i}", Drop("duplicate_near", cluster=f"p{i}")) for i in range(10)
    )


def test_near_dedup_is_deterministic():
    records = [_problem(i, _text(i % 7)) for i in range(20)]
    first = _run(NearDedup(DedupLevel(), "problems"), records)
    second = _run(NearDedup(DedupLevel(), "problems"), records)
    assert [r.problem_id for r in first[0]] == [r.problem_id for r in second[0]]
    assert first[1] == second[1]


def test_short_and_odd_texts_do_not_crash():
    assert shingles("", 5) == {b""}
    records = [_problem(i, t) for i, t in enumerate(["", "x", "🙂🙂 数学 ∑", "a b", "\x00", "A B"])]
    kept, drops = _run(NearDedup(DedupLevel(), "problems"), records)
    assert [r.problem_id for r in kept] == ["p0", "p1", "p2", "p3", "p4"]
    assert drops == [("p5", Drop("duplicate_near", cluster="p3"))]  # case-folded copy
