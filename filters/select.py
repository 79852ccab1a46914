"""Rejection sampling over one problem's samples: which verified samples to keep, whether the
problem's pass rate is in the window, and a majority-vote label for problems without gold.

Plain functions over small per-problem tables (a `Sample` per teacher sample), so the
policies can be tested on hand-built verdict tables and driven by any stage:

- `pick`: up to k passing samples by policy — `shortest`, `longest`, `random` (seeded by
  the problem id, so reruns pick the same ones), `majority` (samples whose answer is the most
  common among the passing ones first, then shortest); ties always by id.
- `pass_rate` / `in_window`: open-r1 keeps problems solved 10–60% of the time: the easy ones
  teach nothing new, the never-solved ones have no trace to keep.
- `majority_vote`: NeMo-Skills' self-consistency label for problems without gold — the most
  common final answer if its share reaches `min_share`; a tie for first place gives no label.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

Policy = Literal["shortest", "longest", "random", "majority"]


@dataclass(frozen=True)
class Sample:
    id: str
    problem_id: str
    verdict: str | None  # "pass" for a verified sample
    answer: str | None
    length: int  # tokens (or characters) of the completion


def canonical(answer: str | None) -> str | None:
    """The vote key of an answer: spacing, `$`, `\\boxed{}`, thousands separators and number
    spelling do not split votes ("1/2", "0.5" and "\\frac{1}{2}" share a key); anything
    that is not a number is compared as written."""
    if answer is None:
        return None
    text = answer.strip().strip("$").replace(" ", "")
    if text.startswith("\\boxed{") and text.endswith("}"):
        text = text[len("\\boxed{") : -1]
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    if text.startswith("\\frac{") and text.count("{") == 2:
        num, _, den = text[len("\\frac{") : -1].partition("}{")
        text = f"{num}/{den}"
    try:
        return str(Fraction(text.replace(",", "")))
    except (ValueError, ZeroDivisionError):
        return text or None


def majority_vote(
    answers: Sequence[str | None],
    min_share: float,
    key: Callable[[str | None], str | None] = canonical,
) -> tuple[str | None, float]:
    """(label, share): the most common answer (as first written) when its share of all
    answers reaches `min_share` and no other answer ties it; otherwise (None, share)."""
    keys = [key(a) for a in answers]
    counts = Counter(k for k in keys if k is not None)
    if not answers or not counts:
        return None, 0.0
    (top, n), *rest = counts.most_common()
    share = n / len(answers)
    if (rest and rest[0][1] == n) or share < min_share:
        return None, share
    return next(a for a, k in zip(answers, keys, strict=True) if k == top), share


def pass_rate(samples: Sequence[Sample]) -> float:
    return sum(s.verdict == "pass" for s in samples) / len(samples) if samples else 0.0


def in_window(rate: float, low: float, high: float) -> bool:
    return low <= rate <= high


def pick(samples: Sequence[Sample], k: int, policy: Policy, seed: int = 0) -> list[Sample]:
    """Up to k passing samples of one problem, best first by `policy`."""
    passing = sorted((s for s in samples if s.verdict == "pass"), key=lambda s: s.id)
    if policy == "shortest":
        ranked = sorted(passing, key=lambda s: s.length)
    elif policy == "longest":
        ranked = sorted(passing, key=lambda s: -s.length)
    elif policy == "random":
        digest = hashlib.sha256(f"{seed}\x00{samples[0].problem_id}".encode()).digest()
        ranked = passing[:]
        random.Random(digest).shuffle(ranked)
    elif policy == "majority":
        votes = Counter(canonical(s.answer) for s in passing)
        ranked = sorted(passing, key=lambda s: (-votes[canonical(s.answer)], s.length))
    else:
        raise ValueError(
            f"selection policy {policy!r} (allowed: shortest, longest, random, majority)"
        )
    return ranked[:k]
