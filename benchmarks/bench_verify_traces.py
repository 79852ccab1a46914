"""Math verification on trace-shaped pairs: factory vs a plain serial math-verify loop.

Pairs are built from GSM8K test and MATH-500 (../shared/data): a model output is a `<think>`
block of 2–20 KB of reasoning (the item's reference solution padded with more reasoning
text), then a final answer that is the gold (40%), an equivalent spelling of it (10%), or a
wrong answer (40%); the other 10% are adversarial: sympy hangs (`9^{9^{9^{9}}}+1`, `(10^{10})!`),
300-deep fractions, a 1 MB answer, 20k unbalanced `\\boxed{`, answer spraying, a truncated
output. Seeded: the same pairs every run.

  factory   ParseAnswer (extraction policy) + MathVerifier (numeric fast path, math-verify in
            `--workers` killable processes with a hard `--timeout` per item), batches of 64
  baseline  `math_verify.parse(output)` + `verify(parse(gold), ...)` in one process, serially,
            with math-verify's own timeouts (signal based; main thread only)

Printed: pairs/s of both and the ratio (goal >= 3x), agreement on the non-adversarial pairs,
factory's per-item latency p50/p99/max (each item timed alone) and whether any item exceeded
its hard budget.

    python benchmarks/bench_verify_traces.py [--pairs 10000] [--workers 2] [--timeout 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
ADVERSARIAL = [
    "\\boxed{9^{9^{9^{9}}}+1}",
    "\\boxed{(10^{10})!}",
    "\\boxed{" + "\\frac{" * 300 + "1" + "}{2}" * 300 + "}",
    "\\boxed{" + "7" * 1_000_000 + "}",
    "\\boxed{" * 20_000,
    "\\boxed{1} or \\boxed{2} or \\boxed{3}",
    "TRUNCATED",
]


def build(n: int, seed: int = 0) -> list[tuple[str, str, str, str]]:
    """(gold, completion, finish_reason, kind) with kind in right/respelled/wrong/adversarial."""
    from factory.problems.gold import gold_answer

    rng = random.Random(seed)
    rows = [json.loads(x) for x in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    items = [(gold_answer(r["answer"]), r["answer"].split("####")[0]) for r in rows]
    rows = [json.loads(x) for x in (DATA / "math500" / "test.jsonl").read_text().splitlines()]
    items += [(r["answer"], r["solution"]) for r in rows]
    filler = " ".join(text for _, text in items[:200]).replace("\\boxed", "")
    out = []
    for i in range(n):
        gold, solution = items[i % len(items)]
        size = rng.randint(2_000, 20_000)
        pad = filler[rng.randrange(len(filler) - 20_000) :][: max(0, size - len(solution))]
        reasoning = (pad + "\n" + solution.replace("\\boxed", "")).strip()
        roll = rng.random()
        finish = "stop"
        if roll < 0.1:
            kind, tail = "adversarial", ADVERSARIAL[i % len(ADVERSARIAL)]
            if tail == "TRUNCATED":
                tail, finish = f"\\boxed{{{gold}}}", "length"
        elif roll < 0.5:
            kind, tail = "right", f"The answer is \\boxed{{{gold}}}."
        elif roll < 0.6:
            kind, tail = "respelled", f"The answer is \\boxed{{{respell(gold)}}}."
        else:
            other = items[(i * 7 + 3) % len(items)][0]
            kind, tail = (
                "wrong",
                f"The answer is \\boxed{{{other if other != gold else gold + '1'}}}.",
            )
        out.append((gold, f"<think>\n{reasoning}\n</think>\n{tail}", finish, kind))
    return out


def respell(gold: str) -> str:
    from filters.verify_math import as_number

    value = as_number(gold)
    if value is not None and value.denominator == 1:
        return f"{value.numerator}.0"
    return f"{gold} "


def factory_pass(pairs, workers: int, timeout: float) -> tuple[float, list[str], list[float]]:
    from factory.recipe import ParseConfig, VerifyConfig
    from factory.record import Record
    from factory.stage import Drop
    from filters.parse_answer import ParseAnswer
    from filters.verify_math import MathVerifier

    parse = ParseAnswer(ParseConfig())
    verifier = MathVerifier(VerifyConfig(timeout_s=timeout, workers=workers))

    def one_batch(batch):
        answers, verdicts = [], [None] * len(batch)
        for j, (gold, completion, finish, _) in enumerate(batch):
            rec = Record(problem_id="p", source="s", problem="q", gold=gold, id=str(j))
            rec.completion, rec.finish_reason = completion, finish
            parsed = parse.process(rec)
            if isinstance(parsed, Drop):
                verdicts[j] = "fail"
            else:
                answers.append((j, gold, parsed.answer))
        for (j, _, _), (verdict, _) in zip(
            answers, verifier.check([(g, a) for _, g, a in answers]), strict=True
        ):
            verdicts[j] = verdict
        return verdicts

    try:
        verifier.check([("\\frac{1}{2}", "0.5")])  # start the workers before the clock
        t0 = time.perf_counter()
        verdicts = []
        for i in range(0, len(pairs), 64):
            verdicts += one_batch(pairs[i : i + 64])
        seconds = time.perf_counter() - t0
        latencies = []
        for pair in pairs:
            t = time.perf_counter()
            one_batch([pair])
            latencies.append(time.perf_counter() - t)
    finally:
        verifier.close()
    return seconds, verdicts, latencies


def baseline_pass(pairs) -> tuple[float, list[bool]]:
    import logging

    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    t0 = time.perf_counter()
    results = []
    for gold, completion, _, _ in pairs:
        try:
            results.append(bool(verify(parse(f"\\boxed{{{gold}}}"), parse(completion))))
        except Exception:
            results.append(False)
    return time.perf_counter() - t0, results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    pairs = build(args.pairs)
    kinds = [k for *_, k in pairs]
    print(f"{len(pairs)} pairs: " + ", ".join(f"{k} {kinds.count(k)}" for k in sorted(set(kinds))))
    f_s, verdicts, latencies = factory_pass(pairs, args.workers, args.timeout)
    b_s, base = baseline_pass(pairs)
    clean = [i for i, k in enumerate(kinds) if k != "adversarial"]
    agree = sum((verdicts[i] == "pass") == base[i] for i in clean)
    q = statistics.quantiles(latencies, n=100)
    over = sum(t > args.timeout + 1.0 for t in latencies)  # budget + worker restart slack
    print(f"factory : {len(pairs) / f_s:9.1f} pairs/s ({f_s:.1f} s, {args.workers} workers)")
    print(f"baseline: {len(pairs) / b_s:9.1f} pairs/s ({b_s:.1f} s, serial math-verify)")
    print(f"ratio factory / baseline = {b_s / f_s:.2f}x (goal >= 3x)")
    print(f"agreement on the {len(clean)} non-adversarial pairs: {agree / len(clean):.1%}")
    right = [verdicts[i] == "pass" for i, k in enumerate(kinds) if k in ("right", "respelled")]
    wrong = [verdicts[i] == "pass" for i, k in enumerate(kinds) if k == "wrong"]
    print(f"factory passes {sum(right)}/{len(right)} right, {sum(wrong)}/{len(wrong)} wrong")
    print(
        f"latency per item (alone): p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms, "
        f"max {max(latencies):.2f} s; over the {args.timeout:.0f} s budget: {over}"
    )


if __name__ == "__main__":
    main()
