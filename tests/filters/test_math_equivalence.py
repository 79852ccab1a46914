"""RELIABILITY.md M6: an equivalence table of 200+ (gold, answer) pairs, each marked equal or
not, through factory's math verifier (fast path + math-verify in workers). Families are
generated where the label is certain by construction (a value and its other spellings; a
value and a different value), plus hand-written cases for intervals, sets, tuples, matrices,
`\\pi`, radicals, units, `\\text{}`, `x=2` and multiple-choice letters."""

from __future__ import annotations

from fractions import Fraction

import pytest

from factory.problems.gold import gold_answer
from factory.recipe import VerifyConfig
from filters.verify_math import MathVerifier


def _numeric_family() -> list[tuple[str, str, bool]]:
    pairs = []
    fractions = [Fraction(1, 2), Fraction(3, 4), Fraction(-5, 8), Fraction(7, 5), Fraction(9, 20)]
    for f in fractions:
        dec = str(float(f))
        latex = f"\\frac{{{f.numerator}}}{{{f.denominator}}}"
        if f < 0:
            latex = f"-\\frac{{{-f.numerator}}}{{{f.denominator}}}"
        pairs += [
            (latex, dec, True),
            (dec, latex, True),
            (f"{f.numerator}/{f.denominator}", dec, True),
            (latex, latex.replace("\\frac", "\\dfrac"), True),
            (latex, latex.replace("\\frac", "\\tfrac"), True),
            (latex, str(float(f) + 0.1), False),
            (latex, f"\\frac{{{f.denominator}}}{{{f.numerator}}}", f == 1 / f),
        ]
    for n in (0, 7, 42, 100, 1000, 12345, 1000000, -3, -250):
        pairs += [
            (str(n), str(n), True),
            (str(n), f"{n}.0", True),
            (str(n), f"{n:,}", True),
            (str(n), f"\\${n}" if n >= 0 else f"-\\${-n}", True),
            (str(n), f"{n} \\text{{ dollars}}", True),
            (str(n), str(n + 1), False),
            (str(n), str(-n - 1), False),
            (gold_answer(f"so the total is {n:,}.\n#### {n:,}"), str(n), True),  # GSM8K gold
        ]
    for pct in (5, 12.5, 40, 150):
        pairs += [(f"{pct}\\%", f"{pct}", True), (f"{pct}", f"{pct}\\%", True)]
        pairs += [(f"{pct}\\%", f"{pct + 1}\\%", False)]
    return pairs


HAND = [
    # radicals and pi
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}", True),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}", True),
    ("2\\sqrt{2}", "\\sqrt{8}", True),
    ("3\\sqrt{3}", "\\sqrt{27}", True),
    ("\\sqrt{2}", "\\sqrt{3}", False),
    ("\\sqrt{2}", "1.41421356", True),  # numeric equality to math-verify's float rounding
    ("2\\pi", "2 \\pi", True),
    ("\\pi", "\\pi", True),
    ("\\frac{\\pi}{2}", "\\pi/2", True),
    ("\\frac{\\pi}{3}", "\\frac{\\pi}{6}", False),
    ("4\\pi", "12.566370614", True),
    ("\\pi", "3", False),
    ("\\pi r^2", "r^2\\pi", True),
    # expressions
    ("x^2+2x+1", "(x+1)^2", True),
    ("2x+3", "3+2x", True),
    ("2x+3", "2x-3", False),
    ("\\frac{x}{2}", "0.5x", True),
    ("a+b", "b+a", True),
    ("e^{2}", "e^2", True),
    ("\\ln 8", "3\\ln 2", True),
    ("\\log_2 8", "3", True),
    ("2^{10}", "1024", True),
    ("10!", "3628800", True),
    ("\\binom{5}{2}", "10", True),
    ("\\binom{5}{2}", "20", False),
    ("\\sin^2 x + \\cos^2 x", "1", True),
    ("1.5 \\times 10^{3}", "1500", True),
    ("3+4i", "4i+3", True),
    ("3+4i", "3-4i", False),
    # equations
    ("x=2", "2", True),
    ("2", "x=2", True),
    ("y=3x+1", "3x+1", True),
    ("x=5", "x=6", False),
    ("x=-1", "-1", True),
    # intervals
    ("[0, 1)", "[0,1)", True),
    ("[0,1)", "[0,1]", False),
    ("(0,1)", "(0, 1)", True),
    ("(-\\infty, 3]", "(-\\infty,3]", True),
    ("(-\\infty, 3]", "(-\\infty, 3)", False),
    ("(2, \\infty)", "(2,\\infty)", True),
    ("[1,2] \\cup [3,4]", "[1,2]\\cup[3,4]", True),
    ("[1,2] \\cup [3,4]", "[1,4]", False),
    # sets
    ("\\{1,2\\}", "\\{2,1\\}", True),
    ("\\{1,2,3\\}", "\\{1,2\\}", False),
    ("\\{-1, 1\\}", "\\{1,-1\\}", True),
    ("\\{3\\}", "\\{4\\}", False),
    # tuples and points
    ("(1,2)", "(1, 2)", True),
    ("(1,2)", "(2, 1)", False),
    ("(1,2,3)", "(1, 2, 3)", True),
    ("(0,0)", "(0,1)", False),
    ("(\\frac{1}{2}, 3)", "(0.5, 3)", True),
    # matrices
    (
        "\\begin{pmatrix}1 & 2\\\\3 & 4\\end{pmatrix}",
        "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
        True,
    ),
    (
        "\\begin{pmatrix}1 & 2\\\\3 & 4\\end{pmatrix}",
        "\\begin{pmatrix}1&2\\\\3&5\\end{pmatrix}",
        False,
    ),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{bmatrix}1\\\\2\\end{bmatrix}", True),
    (
        "\\begin{pmatrix}0.5 \\\\ 1\\end{pmatrix}",
        "\\begin{pmatrix}\\frac{1}{2} \\\\ 1\\end{pmatrix}",
        True,
    ),
    # units and text
    ("5", "5 \\text{ cm}", True),
    ("5 \\text{ cm}", "5", True),
    ("12", "12 \\text{ apples}", True),
    ("12", "13 \\text{ apples}", False),
    ("90^\\circ", "90", True),
    ("30", "30^{\\circ}", True),
    ("3.5", "3.5\\text{ hours}", True),
    ("\\text{Monday}", "\\text{Monday}", True),
    ("\\text{Monday}", "\\text{Tuesday}", False),
    # multiple choice
    ("\\text{(B)}", "B", True),
    ("B", "\\text{(B)}", True),
    ("(C)", "C", True),
    ("C", "D", False),
    ("\\text{(A)}", "\\text{(E)}", False),
    ("A", "A", True),
    # decimals and rounding
    ("0.333", "\\frac{1}{3}", False),
    ("1.5", "\\frac{3}{2}", True),
    ("2.50", "2.5", True),
    ("0.1", "0.10", True),
    ("0.1", "0.01", False),
    ("1e3", "1000", True),
    ("-0", "0", True),
    # negative forms
    ("-\\frac{1}{2}", "\\frac{-1}{2}", True),
    ("-\\frac{1}{2}", "-0.5", True),
    ("-\\frac{1}{2}", "0.5", False),
    ("\\frac{-3}{4}", "-0.75", True),
    # infinity
    ("\\infty", "\\infty", True),
    ("\\infty", "-\\infty", False),
]

TABLE = _numeric_family() + HAND


def test_the_table_is_big_enough():
    assert len(TABLE) >= 200
    assert sum(equal for *_, equal in TABLE) >= 100 and sum(not e for *_, e in TABLE) >= 50


@pytest.fixture(scope="module")
def verifier():
    v = MathVerifier(VerifyConfig(timeout_s=10, workers=2))
    yield v
    v.close()


@pytest.fixture(scope="module")
def verdicts(verifier):
    return verifier.check([(g, a) for g, a, _ in TABLE])


@pytest.mark.parametrize(
    ("i", "gold", "answer", "equal"), [(i, *row) for i, row in enumerate(TABLE)]
)
def test_equivalence(verdicts, i, gold, answer, equal):
    verdict, reason = verdicts[i]
    assert verdict == ("pass" if equal else "fail"), (gold, answer, verdict, reason)
