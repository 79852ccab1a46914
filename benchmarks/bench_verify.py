"""Verification throughput: factory's VerifyMath vs calling math-verify in-process.

factory adds a numeric fast path and runs math-verify in killable worker processes (for
safety: a hanging sympy call cannot stall a run). This measures what that costs or saves on
real gold answers: GSM8K test (numbers) and MATH-500 (LaTeX), each answer checked against its
own reference solution, so every item should pass.

    python benchmarks/bench_verify.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"


def pairs() -> dict[str, list[tuple[str, str]]]:
    from factory.problems.gold import gold_answer

    gsm = [json.loads(x) for x in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    m500 = [json.loads(x) for x in (DATA / "math500" / "test.jsonl").read_text().splitlines()]
    return {
        "gsm8k-test": [(gold_answer(r["answer"]), gold_answer(r["answer"])) for r in gsm],
        "math500": [(r["answer"], gold_answer(r["solution"])) for r in m500],
    }


def bare(items: list[tuple[str, str]]) -> tuple[float, int]:
    from math_verify import parse, verify

    t0 = time.perf_counter()
    ok = sum(bool(verify(parse(f"\\boxed{{{g}}}"), parse(f"\\boxed{{{a}}}"))) for g, a in items)
    return time.perf_counter() - t0, ok


def factory_verify(items: list[tuple[str, str]], workers: int) -> tuple[float, int]:
    from factory.recipe import VerifyConfig
    from factory.record import Record
    from factory.stage import Drop
    from filters.verify_math import VerifyMath

    records = [
        Record(problem_id=str(i), source="b", problem="", gold=g, answer=a)
        for i, (g, a) in enumerate(items)
    ]
    v = VerifyMath(VerifyConfig(workers=workers))
    t0 = time.perf_counter()
    ok = 0
    for i in range(0, len(records), 64):
        ok += sum(not isinstance(r, Drop) for r in v.process_batch(records[i : i + 64]))
    seconds = time.perf_counter() - t0  # includes starting the workers
    v.close()
    return seconds, ok


def main() -> None:
    import math_verify  # noqa: F401  (import cost kept out of the timings)

    print(
        f"{'set':12} {'items':>6} {'math-verify s':>14} {'factory s':>10} {'ratio':>7}  passed (bare/factory)"
    )
    for name, items in pairs().items():
        b_s, b_ok = bare(items)
        f_s, f_ok = factory_verify(items, workers=2)
        print(f"{name:12} {len(items):6d} {b_s:14.2f} {f_s:10.2f} {b_s / f_s:6.2f}x  {b_ok}/{f_ok}")
    print("ratio = bare math-verify time / factory time (higher is better for factory)")


if __name__ == "__main__":
    main()
