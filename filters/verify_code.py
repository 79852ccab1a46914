"""Code verification: run a model-written program against tests in the sandbox; a verdict.

Tests are a record's `gold`, as JSON, in one of two kinds:

    {"kind": "stdio", "cases": [{"input": "...", "output": "..."}, ...]}      APPS, CodeContests
    {"kind": "function", "entry_point": "f", "test": "def check(candidate): ...",
     "prelude": "<optional trusted code, e.g. the HumanEval prompt>"}         HumanEval, MBPP

Verdicts are (verdict, reason): `pass` PASS; `fail` WRONG_ANSWER, RUNTIME_ERROR, TIMEOUT, MEMORY,
OUTPUT_LIMIT, REJECTED_SOURCE; `error` SANDBOX_ERROR, which is never counted as the model's
failure. All tests of a sample run in ONE sandbox (`filters/sandbox.py`), each with its own
deadline, and nothing is ever raised for bad model output.

stdio: the expected outputs never enter the sandbox. The program runs once per case; its stdout
comes back to this process and is compared here, line by line with whitespace normalised (runs
of blanks collapsed, trailing blank lines dropped). A prefix of the answer is a wrong answer.

function — the threat model. The program's code can do anything inside its own process: patch
builtins or `sys.exit`, call `os._exit(0)` before any test runs, print "all tests passed",
ignore SIGALRM, return an object whose `__eq__` is always true (S13, S14). So no verdict is
decided in that process:
- the test code (`check(candidate)`, or top-level asserts) runs in the sandbox's launcher, a
  separate process the program cannot ptrace, signal or read (it runs as another uid, or is
  non-dumpable PID 1), and the tests are never written to a file inside the sandbox;
- the program is loaded in a worker process; `candidate` is a proxy that sends the arguments as
  plain values and gets plain values back — None, bool, int, float, str, bytes, complex, list,
  tuple, dict, set, frozenset, checked by exact type, so an int subclass or a custom `__eq__`
  cannot cross; any other return value is WRONG_ANSWER;
- the program's prints go to a capped stream that nobody parses; a worker that exits before
  answering is RUNTIME_ERROR; time limits are a deadline in the launcher and SIGKILL, never an
  alarm inside the program; the verdict is the launcher's JSON report, which only it can write.
Not defended: a program that recognises the test inputs and returns memorised answers (only
hidden tests help); helpers the tests call that come from the program rather than from the
trusted `prelude` (give the HumanEval prompt as prelude: `poly`, `encode_cyclic` are then
trusted); in-place mutation of arguments (they are copies, so a test cannot see it); values of
other types (generators, numpy arrays) fail even where Python equality would accept them. The
tests themselves are trusted code. The canonical solutions of all 164 HumanEval problems pass.
"""

from __future__ import annotations

import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from factory.record import Record
from filters.sandbox import Limits, run_cases, run_function_test, sandbox_kind
from filters.verify import Verify

log = logging.getLogger(__name__)

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.M | re.S)
_PYTHON_TAGS = {"", "python", "py", "python3"}
_REASONS = {  # sandbox status -> reason
    "ok": "PASS",
    "wrong": "WRONG_ANSWER",
    "error": "RUNTIME_ERROR",
    "timeout": "TIMEOUT",
    "memory": "MEMORY",
    "output_limit": "OUTPUT_LIMIT",
    "rejected": "REJECTED_SOURCE",
    "sandbox_error": "SANDBOX_ERROR",
}


class VerifyCodeConfig(Protocol):
    timeout_s: float  # per test: one stdio case, or one function test
    memory_mb: int
    max_output_bytes: int
    max_processes: int
    max_file_bytes: int
    max_open_files: int
    workers: int  # sandboxes run in parallel
    unsafe: bool  # allow running without bubblewrap (rows are tagged sandbox=unsafe)


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: str  # pass | fail | error
    reason: str  # PASS, WRONG_ANSWER, ... (see module docstring)
    sandbox: str  # bwrap | unsafe | none (rejected before running)
    detail: str = ""
    seconds: tuple[float, ...] = ()  # wall time per test that ran


def extract_code(completion: str) -> str | None:
    """The last ```python / ```py / bare ``` block after `</think>` (or in the whole text when
    there is no `</think>`); None if there is none or it is empty."""
    text = completion.rpartition("</think>")[2]
    blocks = [m.group(2) for m in _FENCE.finditer(text) if m.group(1).lower() in _PYTHON_TAGS]
    if not blocks or not blocks[-1].strip():
        return None
    return blocks[-1]


def parse_tests(gold: str | dict | None) -> dict:
    """The tests of a record's `gold`; ValueError naming what is wrong with them."""
    tests = json.loads(gold) if isinstance(gold, str) else gold
    if not isinstance(tests, dict):
        raise ValueError(f"tests must be a JSON object, got {type(tests).__name__}")
    kind = tests.get("kind")
    if kind == "stdio":
        cases = tests.get("cases")
        if not cases or not isinstance(cases, list):
            raise ValueError("stdio tests need a non-empty list of cases")
        for case in cases:
            if not isinstance(case, dict) or not all(
                isinstance(case.get(key), str) for key in ("input", "output")
            ):
                raise ValueError("each stdio case needs string 'input' and 'output'")
    elif kind == "function":
        if not str(tests.get("entry_point", "")).isidentifier():
            raise ValueError(f"entry_point {tests.get('entry_point')!r} is not a Python name")
        if not isinstance(tests.get("test"), str) or not isinstance(tests.get("prelude", ""), str):
            raise ValueError("function tests need 'test' (and optional 'prelude') as strings")
    else:
        raise ValueError(f"tests kind {kind!r}: allowed 'stdio', 'function'")
    return tests


def same_output(got: bytes, expected: str) -> bool:
    """Line by line, blanks collapsed, trailing blank lines ignored."""
    return _lines(got.decode("utf-8", "replace")) == _lines(expected)


def _lines(text: str) -> list[list[str]]:
    lines = [line.split() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def check_program(
    program: str, tests: dict, limits: Limits, *, unsafe: bool = False
) -> tuple[str, str]:
    """(verdict, reason) of `program` against `tests`."""
    j = judge(program, tests, limits, unsafe=unsafe)
    return j.verdict, j.reason


def judge(program: str, tests: dict, limits: Limits, *, unsafe: bool = False) -> Judgement:
    """The full judgement: verdict, reason, which sandbox ran it, what failed, time per test."""
    tests = parse_tests(tests)
    try:
        if tests["kind"] == "stdio":
            return _judge_stdio(program, tests["cases"], limits, unsafe)
        return _judge_function(program, tests, limits, unsafe)
    except OSError as e:  # the machine, not the program: out of fds, processes, memory
        log.warning("sandbox failed to start: %s", e)
        return Judgement("error", "SANDBOX_ERROR", sandbox_kind(unsafe), str(e))


def _judgement(status: str, sandbox: str, detail: str, seconds: tuple) -> Judgement:
    reason = _REASONS[status]
    verdict = {"PASS": "pass", "SANDBOX_ERROR": "error"}.get(reason, "fail")
    return Judgement(verdict, reason, sandbox, detail, seconds)


def _judge_stdio(program: str, cases: list[dict], limits: Limits, unsafe: bool) -> Judgement:
    inputs = [case["input"].encode() for case in cases]
    results = run_cases(program, inputs, limits, unsafe=unsafe)
    seconds = tuple(r.wall_s for r in results)
    for i, (result, case) in enumerate(zip(results, cases, strict=False)):
        if result.status != "ok":
            return _judgement(result.status, result.sandbox, f"case {i}: {result.detail}", seconds)
        if not same_output(result.stdout, case["output"]):
            return _judgement("wrong", result.sandbox, f"case {i}: output differs", seconds)
    if len(results) < len(cases):
        return _judgement("sandbox_error", results[-1].sandbox, "cases missing", seconds)
    return _judgement("ok", results[-1].sandbox, "", seconds)


def _judge_function(program: str, tests: dict, limits: Limits, unsafe: bool) -> Judgement:
    result = run_function_test(
        program,
        tests["entry_point"],
        tests["test"],
        tests.get("prelude", ""),
        limits,
        unsafe=unsafe,
    )
    return _judgement(result.status, result.sandbox, result.detail, (result.wall_s,))


class CodeChecker:
    """The code verifier as one of the verify stage's checkers: each record's program (its
    parsed `answer`, else the last fenced block of its completion) against its `gold` tests.
    Every judged record gets `meta.sandbox` (`bwrap` or `unsafe`); drops add `verify_detail`."""

    name = "code"

    def __init__(self, cfg: VerifyCodeConfig) -> None:
        self.cfg = cfg
        self.limits = Limits(
            timeout_s=cfg.timeout_s,
            memory_mb=cfg.memory_mb,
            max_output_bytes=cfg.max_output_bytes,
            max_processes=cfg.max_processes,
            max_file_bytes=cfg.max_file_bytes,
            max_open_files=cfg.max_open_files,
        )
        # fail fast, before any generation: no working bubblewrap and no explicit unsafe mode
        # raises SandboxUnavailable naming the fix
        if sandbox_kind(cfg.unsafe) == "unsafe":
            log.warning("bubblewrap unavailable: running model code WITHOUT a sandbox (unsafe)")

    def check(self, records: list[Record]) -> list[tuple[str, str]]:
        # threads only wait on sandboxes; each stays alive while its bwrap runs, which
        # --die-with-parent needs (it watches the thread that started bwrap)
        with ThreadPoolExecutor(max_workers=max(1, self.cfg.workers)) as pool:
            return list(pool.map(self._one, records))

    def _one(self, record: Record) -> tuple[str, str]:
        code = record.answer or extract_code(record.completion or "")
        if code is None:
            return "fail", "no_code"
        record.answer = code
        try:
            tests = parse_tests(record.gold)
        except (ValueError, TypeError, AttributeError) as e:
            log.warning("record %s: unusable tests: %s", record.id, e)
            return "error", "sandbox_error"
        j = judge(code, tests, self.limits, unsafe=self.cfg.unsafe)
        record.meta = {**record.meta, "sandbox": j.sandbox}
        if j.verdict != "pass":
            record.meta["verify_detail"] = j.detail
        return j.verdict, "sandbox" if j.verdict == "pass" else j.reason.lower()

    def close(self) -> None:
        """Holds nothing between batches."""


class VerifyCode(Verify):
    """The verify stage with the code verifier alone: keep samples whose program passes its
    tests; drop the rest with the reason in lower case (`wrong_answer`, `timeout`, `no_code`,
    `sandbox_error`, …)."""

    name = "verify_code"

    def __init__(self, cfg: VerifyCodeConfig) -> None:
        super().__init__([CodeChecker(cfg)])
        self.batch_size = 4 * max(1, cfg.workers)
