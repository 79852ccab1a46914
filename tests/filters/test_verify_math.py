from __future__ import annotations

import json
import time

import pytest

from factory.problems.gold import gold_answer
from factory.recipe import VerifyConfig
from factory.record import Record
from factory.stage import Drop
from filters.verify_math import MathVerifier, VerifyMath, as_number, fast_verdict
from filters.worker_pool import CRASHED, TIMEOUT, WorkerPool

# (gold, answer, equal?) — the fast path and math-verify together
TABLE = [
    ("72", "72", True),
    ("72", "72.0", True),
    ("1000", "1,000", True),
    ("12", "1, 2", False),  # a list is not a thousands separator
    ("12", "1,2", False),
    ("-4", "-4", True),
    ("-4", "4", False),
    ("0.5", "\\frac{1}{2}", True),
    ("\\frac{1}{2}", "0.5", True),
    ("3/4", "0.75", True),
    ("\\frac{3}{4}", "\\dfrac{3}{4}", True),
    ("18", "\\$18", True),
    ("25", "25\\%", True),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
    ("2\\pi", "2 \\pi", True),
    ("\\pi", "3.14159", False),
    ("(1,2)", "(1, 2)", True),
    ("(1,2)", "(2, 1)", False),
    ("x=2", "2", True),
    ("[0, 1)", "[0,1)", True),
    ("\\{1,2\\}", "\\{2,1\\}", True),
    ("\\text{(B)}", "B", True),
    ("10", "11", False),
]


@pytest.fixture(scope="module")
def verifier():
    v = VerifyMath(VerifyConfig(timeout_s=5, workers=1))
    yield v
    v.close()


def _rec(gold: str, answer: str | None) -> Record:
    return Record(problem_id="p", source="s", problem="q", gold=gold, id="x", answer=answer)


def test_equivalence_table(verifier):
    records = [_rec(g, a) for g, a, _ in TABLE]
    results = verifier.process_batch(records)
    for (gold, answer, equal), record, result in zip(TABLE, records, results, strict=True):
        assert (not isinstance(result, Drop)) == equal, (gold, answer, result, record.verdict)
        assert record.verdict == ("pass" if equal else "fail"), (gold, answer)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1,000", 1000),
        ("-3.50", -3.5),
        ("3/4", 0.75),
        ("\\$12", 12),
        ("40%", 40),
        ("7.", 7),
        ("x", None),
        ("1/0", None),
        ("", None),
    ],
)
def test_as_number(text, value):
    got = as_number(text)
    assert (got is None and value is None) or float(got) == value


def test_fast_path_needs_no_worker():
    assert fast_verdict("42", "42.00") == "pass"
    assert fast_verdict("42", "41") == "fail"
    assert fast_verdict("\\frac{1}{2}", "0.5") is None  # LaTeX goes to math-verify
    v = VerifyMath(VerifyConfig())
    out = v.process_batch([_rec("7", "7"), _rec("7", "8")])
    assert v._pool is None  # never started
    assert out[1] == Drop("wrong_answer")


def test_oversized_answers_never_reach_sympy():
    v = VerifyMath(VerifyConfig())
    t0 = time.perf_counter()
    out = v.process_batch(
        [_rec("1", "1" * 1_000_000), _rec("1", "{" * 100 + "1" + "}" * 100), _rec("1", "")]
    )
    assert time.perf_counter() - t0 < 0.5
    assert out == [Drop("answer_too_big"), Drop("answer_too_big"), Drop("no_answer")]
    assert v._pool is None


def test_every_math500_answer_verifies_against_its_own_solution(shared_data, verifier):
    rows = [
        json.loads(line)
        for line in (shared_data / "math500" / "test.jsonl").read_text().splitlines()
    ]
    records = [_rec(r["answer"], gold_answer(r["solution"])) for r in rows]
    results = []
    for i in range(0, len(records), 64):
        results += verifier.process_batch(records[i : i + 64])
    failures = [
        (r.gold, r.answer) for r, res in zip(records, results, strict=True) if isinstance(res, Drop)
    ]
    assert len(rows) == 500 and failures == []


def test_pool_kills_a_stuck_worker_and_goes_on():
    pool = WorkerPool("time.sleep", workers=1, timeout_s=1.0)
    try:
        t0 = time.monotonic()
        out = pool.map([(0,), (600,), (0,)])
        elapsed = time.monotonic() - t0
        assert out == [None, TIMEOUT, None]  # the next item after the hang still runs
        assert pool.killed == 1
        assert elapsed < 20
    finally:
        pool.close()


def test_pool_survives_a_crashing_worker():
    pool = WorkerPool("os._exit", workers=2, timeout_s=5.0)
    try:
        assert pool.map([(3,), (4,)]) == [CRASHED, CRASHED]
    finally:
        pool.close()
    pool = WorkerPool("math.sqrt", workers=2, timeout_s=5.0)
    try:
        assert pool.map([(4.0,), (9.0,), (16.0,)]) == [2.0, 3.0, 4.0]
    finally:
        pool.close()


def test_pool_memory_limit():
    pool = WorkerPool("builtins.bytearray", workers=1, timeout_s=10.0, memory_mb=512)
    try:
        assert pool.map([(10**10,)]) == [("error", "verify_memory")]
        assert len(pool.map([(10,)])[0]) == 10  # the same worker carries on
    finally:
        pool.close()


def test_verify_from_threads(verifier):
    from concurrent.futures import ThreadPoolExecutor

    def check(i: int):
        v = VerifyMath(VerifyConfig(timeout_s=5))
        try:
            return v.process_batch([_rec("\\frac{1}{2}", "0.5"), _rec("\\frac{1}{3}", "0.5")])
        finally:
            v.close()

    with ThreadPoolExecutor(2) as ex:
        for result in ex.map(check, range(2)):
            assert not isinstance(result[0], Drop) and result[1] == Drop("wrong_answer")


HANGS = ["9^{9^{9^{9}}}+1", "(10^{10})!", "2^{2^{2^{2^{2^{2}}}}}", "10^{10^{10}}"]
DEEP = ["\\frac{" * 300 + "1" + "}{2}" * 300, "(" * 10_000 + "1" + ")" * 10_000]


def test_hang_inputs_stop_within_the_budget_and_the_next_item_verifies():
    """M1: timeouts (or refusals before sympy) within the hard budget; the worker is replaced."""
    v = MathVerifier(VerifyConfig(timeout_s=2, workers=1))
    try:
        t0 = time.monotonic()
        verdicts = v.check([("1", a) for a in HANGS + DEEP] + [("\\frac{1}{2}", "0.5")])
        elapsed = time.monotonic() - t0
        assert verdicts[:4] == [("error", "verify_timeout")] * 4
        assert verdicts[4:6] == [("unverifiable", "answer_too_big")] * 2
        assert verdicts[6] == ("pass", "math_verify")
        assert elapsed < 4 * 2 + 10  # each hang bounded by timeout_s (+ worker restarts)
    finally:
        v.close()


def test_a_hang_row_is_written_and_logged_in_under_a_second(tmp_path, caplog):
    """M2: records hold strings only; no sympy object is ever printed outside a worker."""
    import logging

    import pyarrow as pa
    import pyarrow.parquet as pq

    from factory.record import arrow_schema

    record = _rec("1", HANGS[0])
    v = VerifyMath(VerifyConfig(timeout_s=2, workers=1))
    try:
        assert v.process(record) == Drop("verify_timeout")
    finally:
        v.close()
    t0 = time.perf_counter()
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("dropped %s", record)
    pq.write_table(pa.Table.from_pylist([record.row()], schema=arrow_schema()), tmp_path / "r.pq")
    assert time.perf_counter() - t0 < 1.0
    assert record.verdict == "error" and HANGS[0] in caplog.text


def test_asyncio_callers_keep_the_time_limit():
    """M3: from an event loop (through a thread) the hard limit still holds."""
    import asyncio

    v = MathVerifier(VerifyConfig(timeout_s=2, workers=1))

    async def main():
        return await asyncio.gather(
            v.acheck([("1", HANGS[1])]), v.acheck([("\\frac{1}{3}", "\\frac{2}{6}")])
        )

    try:
        t0 = time.monotonic()
        hang, ok = asyncio.run(main())
        assert hang == [("error", "verify_timeout")] and ok == [("pass", "math_verify")]
        assert time.monotonic() - t0 < 15
    finally:
        v.close()


def test_huge_completions_are_rejected_before_any_verifier():
    """M4: a 10 MB completion and 20k unbalanced boxes never reach sympy."""
    from factory.recipe import ParseConfig
    from filters.parse_answer import ParseAnswer

    parse, v = ParseAnswer(ParseConfig()), VerifyMath(VerifyConfig())
    texts = ["<think>" + "x" * 10_000_000 + "</think>\\boxed{" + "9" * 1_000_000 + "}"]
    texts += ["<think>a</think>" + "\\boxed{" * 20_000]
    for text in texts:
        rec = Record(problem_id="p", source="s", problem="q", gold="1", id="x", completion=text)
        rec.finish_reason = "stop"
        parsed = parse.process(rec)
        out = parsed if isinstance(parsed, Drop) else v.process(parsed)
        assert isinstance(out, Drop) and out.reason in {"answer_too_big", "no_answer"}
    assert v._pool is None


def test_every_gsm8k_test_answer_verifies_against_its_own_solution(shared_data, verifier):
    from filters.parse_answer import final_answer

    rows = [
        json.loads(line) for line in (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()
    ]
    pairs = [(gold_answer(r["answer"]), final_answer(r["answer"])) for r in rows]
    verdicts = verifier.checker.verifier.check(pairs)
    failures = [p for p, (v, _) in zip(pairs, verdicts, strict=True) if v != "pass"]
    assert len(rows) == 1319 and failures == []
