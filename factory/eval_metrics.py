"""Scores over an outcome table: pass@1, pass@k, maj@k and their 95% confidence intervals.

An outcome table maps each problem to its samples in sample order, each sample an
`(answer, correct)` pair: `{"p1": [("12", True), ("13", False), (None, False)], ...}`. An
answer of None is a sample without a final answer (truncated, no answer, a teacher failure);
it is wrong and does not vote. Plain functions over plain values, so every definition is
tested on hand-made tables (`tests/factory/test_eval.py`).

- `pass@k` (Chen et al. 2021, "Evaluating Large Language Models Trained on Code"): with n
  samples of which c are correct, the chance that at least one of k samples drawn without
  replacement is correct, 1 - C(n-c, k) / C(n, k), computed as a product (no huge binomials);
  averaged over problems. Unbiased for any k <= n, so pass@1 from n samples is the mean of
  c/n: with `teacher.n = k > 1` pass@1 is averaged over the k samples, not one greedy answer.
- `maj@k` (self-consistency, Wang et al. 2022): the first k samples of a problem vote with
  their final answers, keyed by `filters.select.canonical` ("0.5", "1/2" and "\\frac{1}{2}" are
  one vote); None answers do not vote. The problem scores 1 when the top answer is correct (an
  answer is correct when any of its samples verified), 0 when it is wrong or nothing voted.
  Ties for the top: the problem scores the share of the tied answers that are correct — the
  expected score of breaking the tie uniformly at random, so no order of samples is favoured.
- Confidence intervals (95%): a percentile bootstrap over problems (problems resampled with
  replacement, `resamples` times, seeded: the same table and seed give the same interval) for
  every metric. When each problem has exactly one sample, pass@1 is a plain binomial
  proportion and the Wilson score interval is reported too (`pass@1_wilson`). Samples of one
  problem are not independent, so no interval treats samples as independent trials.

Not covered: pass@k for k above the smallest n of any problem (refused), and intervals over
the randomness of sampling itself (rerun with another `teacher.seed` for that).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from filters.select import canonical

Outcome = tuple[str | None, bool]  # (final answer or None, verified correct)
Outcomes = Mapping[str, Sequence[Outcome]]

CI_METHOD = "percentile bootstrap over problems, 95%"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one problem with `n` samples, `c` of them correct."""
    if not 0 <= c <= n:
        raise ValueError(f"pass@k: correct samples c={c} must lie in 0..n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@{k}: needs 1 <= k <= n samples per problem, got n={n}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    # C(n-c, k) / C(n, k) = prod_{i = n-c+1}^{n} (1 - k / i)
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def majority_correct(samples: Sequence[Outcome]) -> float:
    """maj@k of one problem over `samples` (its first k): 1, 0, or the tied correct share."""
    votes: Counter[str] = Counter()
    correct: dict[str, bool] = {}
    for answer, ok in samples:
        key = canonical(answer)
        if key is None:
            continue
        votes[key] += 1
        correct[key] = correct.get(key, False) or ok
    if not votes:
        return 0.0
    top = max(votes.values())
    tied = [key for key, count in votes.items() if count == top]
    return sum(correct[key] for key in tied) / len(tied)


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95% for the default z)."""
    if trials <= 0:
        raise ValueError("wilson_interval: needs at least one trial")
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_interval(
    per_problem: Sequence[float], resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of per-problem scores."""
    values = np.asarray(per_problem, dtype=float)
    if values.size == 0:
        raise ValueError("bootstrap_interval: no problems to resample")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


def per_problem_scores(outcomes: Outcomes, ks: Sequence[int]) -> dict[str, list[float]]:
    """Each metric's score on each problem, in the table's problem order."""
    smallest = min(len(samples) for samples in outcomes.values())
    for k in ks:
        if not 1 <= k <= smallest:
            raise ValueError(
                f"pass@{k}/maj@{k}: needs k between 1 and the samples per problem "
                f"(the fewest any problem has is {smallest}); sample more or lower k"
            )
    scores: dict[str, list[float]] = {"pass@1": []}
    for k in ks:
        scores.setdefault(f"pass@{k}", [])
        if k > 1:
            scores[f"maj@{k}"] = []
    for samples in outcomes.values():
        n, c = len(samples), sum(ok for _, ok in samples)
        scores["pass@1"].append(c / n)
        for k in ks:
            if k > 1:
                scores[f"pass@{k}"].append(pass_at_k(n, c, k))
                scores[f"maj@{k}"].append(majority_correct(samples[:k]))
    return scores


def score(
    outcomes: Outcomes, ks: Sequence[int] = (1,), resamples: int = 2000, seed: int = 0
) -> dict:
    """pass@1, pass@k and maj@k (k in `ks`, maj@1 left out: it is one sample's pass@1) with
    their bootstrap intervals, over every problem of `outcomes`."""
    if not outcomes:
        raise ValueError("score: the outcome table has no problems")
    if any(not samples for samples in outcomes.values()):
        empty = next(p for p, samples in outcomes.items() if not samples)
        raise ValueError(f"score: problem {empty!r} has no samples")
    ks = sorted(set(ks))
    per_problem = per_problem_scores(outcomes, ks)
    sizes = [len(samples) for samples in outcomes.values()]
    result: dict = {
        "problems": len(outcomes),
        "samples": sum(sizes),
        "samples_per_problem": min(sizes),
    }
    for name, values in per_problem.items():
        result[name] = float(np.mean(values))
    ci: dict[str, list[float]] = {
        name: list(bootstrap_interval(values, resamples, seed))
        for name, values in per_problem.items()
    }
    if max(sizes) == 1:
        correct = sum(ok for samples in outcomes.values() for _, ok in samples)
        ci["pass@1_wilson"] = list(wilson_interval(correct, len(outcomes)))
    result["ci"] = ci
    result["ci_method"] = f"{CI_METHOD} ({resamples} resamples, seed {seed})"
    return result
