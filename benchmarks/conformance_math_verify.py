"""math-verify's own regression cases through factory's math verifier: agreement report.

The cases are not copied into this repository: the script fetches the math-verify sdist of the
installed version with pip (`pip download --no-binary :all:`), reads every
`@pytest.mark.parametrize("gold, pred, expected" (or "result"), [...])` table in its tests/ with `ast`
(nothing from it is executed), and runs each pair through factory's path:

  answer  the prediction as a model's final answer: `$` delimiters stripped; when it holds
          `\\boxed{}`s, what factory's parse stage would take (the last box; different boxes
          are answer spraying and fail)
  gold    likewise from the gold text
  verdict MathVerifier (exact fast path, then math-verify in killable workers)

Printed: pairs, agreement with math-verify's expected labels overall and per test file, and
the disagreements (factory's policy is stricter on purpose in places, e.g. several boxed
answers). Needs network access to the package index.

    python benchmarks/conformance_math_verify.py [--show 20]
"""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def fetch_cases(workdir: Path) -> list[tuple[str, str, str, bool]]:
    """(test file, gold, prediction, expected equal) from the installed math-verify's sdist."""
    v = version("math-verify")
    subprocess.run(
        [sys.executable, "-m", "pip", "download", f"math-verify=={v}", "--no-deps",
         "--no-binary", ":all:", "-d", str(workdir), "-q"],
        check=True,
    )  # fmt: skip
    (sdist,) = workdir.glob("math_verify-*.tar.gz")
    cases = []
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if "/tests/" not in member.name or not member.name.endswith(".py"):
                continue
            source = tar.extractfile(member).read().decode()
            cases += [(Path(member.name).name, *c) for c in _tables(source)]
    return cases


def _tables(source: str):
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or getattr(node.func, "attr", "") != "parametrize":
            continue
        if len(node.args) < 2 or not isinstance(node.args[0], ast.Constant):
            continue
        names = [n.strip() for n in str(node.args[0].value).split(",")]
        label = next((n for n in ("expected", "result") if n in names), None)
        if names[:2] != ["gold", "pred"] or label is None:
            continue
        try:
            rows = ast.literal_eval(node.args[1])
        except ValueError:
            continue  # a table built with code (not literals): skipped, never executed
        at = names.index(label)
        for row in rows:
            gold, pred, expected = row[0], row[1], row[at]
            if isinstance(gold, str) and isinstance(pred, str) and isinstance(expected, int):
                yield gold, pred, bool(expected)


def as_final_answer(text: str) -> str:
    from filters.parse_answer import final_answer

    text = text.strip().strip("$").strip()
    if "\\boxed" in text:
        answer = final_answer(text)
        return answer if isinstance(answer, str) else ""
    return text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--show", type=int, default=20, help="disagreements to print")
    args = ap.parse_args()

    from factory.recipe import VerifyConfig
    from filters.verify_math import MathVerifier

    with tempfile.TemporaryDirectory() as tmp:
        cases = fetch_cases(Path(tmp))
    verifier = MathVerifier(VerifyConfig(timeout_s=10, workers=2))
    try:
        verdicts = verifier.check(
            [(as_final_answer(g), as_final_answer(p)) for _, g, p, _ in cases]
        )
    finally:
        verifier.close()
    agree, total = Counter(), Counter()
    misses = []
    for (file, gold, pred, expected), (verdict, reason) in zip(cases, verdicts, strict=True):
        total[file] += 1
        if (verdict == "pass") == expected:
            agree[file] += 1
        else:
            misses.append((file, gold, pred, expected, verdict, reason))
    n, a = sum(total.values()), sum(agree.values())
    print(f"math-verify {version('math-verify')}: {n} gold/prediction pairs from its tests/")
    print(f"agreement with math-verify's expected labels: {a}/{n} = {a / n:.1%}")
    for file in sorted(total):
        print(f"  {file:28} {agree[file]:4}/{total[file]:<4}")
    for file, gold, pred, expected, verdict, reason in misses[: args.show]:
        print(f"  differs [{file}] expected={expected} factory={verdict}/{reason}: "
              f"gold={gold[:60]!r} pred={pred[:60]!r}")  # fmt: skip


if __name__ == "__main__":
    main()
