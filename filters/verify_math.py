"""Math final-answer verification: a cheap exact fast path, then math-verify in workers.

Verdicts and reason codes: `pass` (`exact_number`, `math_verify`); `fail` (`wrong_answer`,
`unparsable_answer`, `no_answer`); `unverifiable` (`no_gold`, `unparsable_gold`,
`answer_too_big`, `gold_too_big` — over 1,000 characters or 40 levels of nesting, never handed
to sympy); `error` (`verify_timeout`, `verify_crashed`, `verify_memory` — the verifier's
trouble, never counted as the model's). Nothing is ever raised for a bad model answer, and no
sympy object leaves a worker: workers return two short strings.

Fast path: when gold and answer are both plain numbers (integers, decimals, fractions like
`3/4`, with commas, `$` or `%` stripped) they are compared exactly with `Fraction` — no sympy,
no worker. Everything else (LaTeX, expressions, sets, intervals…) goes to math-verify inside
`WorkerPool` processes with a hard per-item wall-clock and memory limit.
"""

from __future__ import annotations

import asyncio
import re
import threading
from fractions import Fraction

from factory.recipe import VerifyConfig
from factory.record import Record
from filters.verify import Verify
from filters.worker_pool import CRASHED, TIMEOUT, WorkerPool

MAX_ANSWER_CHARS = 1000  # longer "final answers" are not answers; never give them to sympy
MAX_BRACE_DEPTH = 40
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,3})?(/\d+)?$")
_STRIP = re.compile(r"\\[!,;: $%]|\\text\{\s*\}|[$\s%]|\.$")
_LIST = re.compile(r"\d,\s")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")  # "1,000" yes; "1, 2" (a list) no


def as_number(text: str) -> Fraction | None:
    """An exact value for plain numeric text ("1,000", "-3.50", "3/4", "$12", "40%") else None."""
    if _LIST.search(text):
        return None  # "32, 349" is a list of two numbers, not thirty-two thousand
    t = _STRIP.sub("", text.strip())
    if _THOUSANDS.fullmatch(t):
        t = t.replace(",", "")
    if not t or not _NUMBER.match(t):
        return None
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def too_big(text: str) -> bool:
    if len(text) > MAX_ANSWER_CHARS:
        return True
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    return deepest > MAX_BRACE_DEPTH


def fast_verdict(gold: str, answer: str) -> str | None:
    """'pass' / 'fail' when both sides are plain numbers, else None (needs math-verify)."""
    g, a = as_number(gold), as_number(answer)
    if g is None or a is None:
        return None
    return "pass" if g == a else "fail"


def check_pair(gold: str, answer: str, timeout_s: int) -> tuple[str, str]:
    """Runs inside a worker process: (verdict, reason) from math-verify."""
    import logging

    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    logging.getLogger("math_verify").setLevel(logging.CRITICAL)  # verdicts say it all
    gold_parsed = parse(f"\\boxed{{{gold}}}", parsing_timeout=timeout_s)
    if not gold_parsed:
        gold_parsed = parse(gold, parsing_timeout=timeout_s)
    if not gold_parsed:
        return "unverifiable", "unparsable_gold"
    answer_parsed = parse(f"\\boxed{{{answer}}}", parsing_timeout=timeout_s)
    if not answer_parsed:
        return "fail", "unparsable_answer"
    try:
        ok = verify(gold_parsed, answer_parsed, timeout_seconds=timeout_s, raise_on_error=True)
    except TimeoutException:
        return "error", "verify_timeout"  # not the model's fault: never counted as wrong
    except Exception:  # sympy cannot compare the two (a set with a number…): not equal
        return "fail", "wrong_answer"
    return ("pass", "math_verify") if ok else ("fail", "wrong_answer")


class MathVerifier:
    """(gold, answer) pairs → (verdict, reason). Safe to call from several threads (they take
    turns on one worker pool) and from asyncio (`acheck` runs in a thread), and the hard time
    limit holds in every case: it is enforced by the parent killing a worker, not by signals."""

    def __init__(self, cfg: VerifyConfig) -> None:
        self.cfg = cfg
        self._pool: WorkerPool | None = None
        self._lock = threading.Lock()

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:  # started on first need: all-numeric runs never pay for it
            self._pool = WorkerPool(
                "filters.verify_math.check_pair",
                self.cfg.workers,
                self.cfg.timeout_s,
                self.cfg.memory_mb,
            )
        return self._pool

    def check(self, pairs: list[tuple[str | None, str | None]]) -> list[tuple[str, str]]:
        verdicts: list[tuple[str, str] | None] = []
        slow: list[int] = []
        for i, (gold, answer) in enumerate(pairs):
            gold, answer = (gold or "").strip(), (answer or "").strip()
            if not answer:
                verdicts.append(("fail", "no_answer"))
            elif not gold:
                verdicts.append(("unverifiable", "no_gold"))
            elif too_big(answer):
                verdicts.append(("unverifiable", "answer_too_big"))
            elif too_big(gold):
                verdicts.append(("unverifiable", "gold_too_big"))
            elif (fast := fast_verdict(gold, answer)) is not None:
                verdicts.append((fast, "exact_number" if fast == "pass" else "wrong_answer"))
            else:
                verdicts.append(None)
                slow.append(i)
        if slow:
            inner = max(1, int(self.cfg.timeout_s / 2))  # math-verify's own alarms, inside
            jobs = [(pairs[i][0].strip(), pairs[i][1].strip(), inner) for i in slow]
            with self._lock:
                results = self.pool.map(jobs)
            for i, result in zip(slow, results, strict=True):
                if result is TIMEOUT:
                    result = ("error", "verify_timeout")
                elif result is CRASHED:
                    result = ("error", "verify_crashed")
                verdicts[i] = result
        return verdicts  # type: ignore[return-value]

    async def acheck(self, pairs: list[tuple[str | None, str | None]]) -> list[tuple[str, str]]:
        return await asyncio.to_thread(self.check, pairs)

    def close(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None


class MathChecker:
    """The math verifier as one of the verify stage's checkers: (gold, answer) of each record."""

    name = "math"

    def __init__(self, cfg: VerifyConfig) -> None:
        self.verifier = MathVerifier(cfg)

    def check(self, records: list[Record]) -> list[tuple[str, str]]:
        return self.verifier.check([(r.gold, r.answer) for r in records])

    def close(self) -> None:
        self.verifier.close()


class VerifyMath(Verify):
    """The verify stage with math as its only verifier."""

    def __init__(self, cfg: VerifyConfig) -> None:
        self.checker = MathChecker(cfg)
        super().__init__([self.checker])

    @property
    def _pool(self) -> WorkerPool | None:  # for tests: None until a slow pair needed it
        return self.checker.verifier._pool
