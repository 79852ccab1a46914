"""A procedural teacher for arithmetic: it solves the problem step by step, exactly.

`teacher.backend=solver` reads the arithmetic expression in the last user turn ("Calculate
4 + 3 * 2.", "… arithmetic problem: 2 - 6 + 3 =" — reasoning-gym's `basic_arithmetic` and
`chain_sum` questions), evaluates it with the usual precedence (parentheses, then `*` and `/`
left to right, then `+` and `-` left to right) and writes one line per operation inside a think
block, then `The answer is \\boxed{N}.` Division keeps exact fractions.

Why it exists: distillation needs a teacher that is better at the task than the student, and
on a CPU-only machine with no model hub the strongest teacher for multi-step arithmetic is a
program. It is a real teacher for factory (requests in, samples out, stable seeds), so the
traces it writes go through the same parse, verify, dedup, publish and train stages as any
model's.

`teacher.solver_error_rate` makes each operation slip (the result off by a small amount) with
that probability, drawn from the request's seed: samples of one problem then disagree, which
is what rejection sampling and journey learning need. A problem the solver cannot read is
answered with a reply that says so (and is dropped by parsing as `no_answer`), never an
exception. Not covered: words ("three plus four"), exponents, anything but + - * / and
parentheses.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from fractions import Fraction

from factory.recipe import TeacherConfig
from factory.teachers.base import Request, Sample

_EXPR = re.compile(r"[-+*/×÷()\d.\s]+")
_TOKEN = re.compile(r"\d+(?:\.\d+)?|[-+*/×÷()]")
_MAX_CHARS = 400


def _tokens(problem: str) -> list[str] | None:
    """The arithmetic tokens of the longest expression-looking run in `problem`."""
    runs = [m.group(0).strip() for m in _EXPR.finditer(problem)]
    runs = [r for r in runs if re.search(r"\d", r) and re.search(r"[-+*/×÷]", r)]
    if not runs:
        return None
    text = max(runs, key=len)
    if len(text) > _MAX_CHARS:
        return None
    tokens = _TOKEN.findall(text)
    return [{"×": "*", "÷": "/"}.get(t, t) for t in tokens] or None


def _fmt(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


class _Steps:
    """Evaluates a token list, recording every operation as a line of reasoning."""

    def __init__(self, tokens: list[str], slip: float, rng: random.Random) -> None:
        self.tokens, self.pos, self.slip, self.rng = tokens, 0, slip, rng
        self.lines: list[str] = []

    def run(self) -> Fraction:
        value = self._sum(0)
        if self.pos != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def _apply(self, left: Fraction, op: str, right: Fraction) -> Fraction:
        if op == "/" and right == 0:
            raise ValueError("division by zero")
        if op == "+":
            exact = left + right
        elif op == "-":
            exact = left - right
        elif op == "*":
            exact = left * right
        else:
            exact = left / right
        result = exact
        if self.slip and self.rng.random() < self.slip:
            result = exact + self.rng.choice([-2, -1, 1, 2, 10])
        self.lines.append(f"{_fmt(left)} {op} {_fmt(right)} = {_fmt(result)}")
        return result

    def _sum(self, depth: int) -> Fraction:
        value = self._product(depth)
        while self.pos < len(self.tokens) and self.tokens[self.pos] in "+-":
            op = self.tokens[self.pos]
            self.pos += 1
            value = self._apply(value, op, self._product(depth))
        return value

    def _product(self, depth: int) -> Fraction:
        value = self._atom(depth)
        while self.pos < len(self.tokens) and self.tokens[self.pos] in "*/":
            op = self.tokens[self.pos]
            self.pos += 1
            value = self._apply(value, op, self._atom(depth))
        return value

    def _atom(self, depth: int) -> Fraction:
        if depth > 20 or self.pos >= len(self.tokens):
            raise ValueError("malformed expression")
        token = self.tokens[self.pos]
        self.pos += 1
        if token == "(":
            value = self._sum(depth + 1)
            if self.pos >= len(self.tokens) or self.tokens[self.pos] != ")":
                raise ValueError("unbalanced parentheses")
            self.pos += 1
            return value
        if token == "-":  # a leading minus
            return -self._atom(depth + 1)
        return Fraction(token)


def solve(problem: str, slip: float = 0.0, seed: int = 0) -> str:
    """The solver's reply to `problem` (a think block with one line per operation)."""
    tokens = _tokens(problem)
    if tokens is None:
        return "I cannot read an arithmetic expression in this problem."
    steps = _Steps(tokens, slip, random.Random(seed))
    try:
        value = steps.run()
    except (ValueError, ZeroDivisionError, IndexError):
        return "I cannot evaluate this expression."
    if not steps.lines:
        return "I cannot read an arithmetic expression in this problem."
    order = (
        "Multiplication and division first, then addition and subtraction, left to right."
        if any(op in tokens for op in "*/") and any(op in tokens for op in "+-")
        else "Left to right."
    )
    lines = "\n".join(steps.lines)
    return f"<think>\n{order}\n{lines}\n</think>\n\nThe answer is \\boxed{{{_fmt(value)}}}."


class SolverTeacher:
    def __init__(self, cfg: TeacherConfig) -> None:
        from filters.length import approx_tokens

        self.model_name = cfg.model
        self._count = approx_tokens

    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample]]:
        for request in requests:
            problem = next(
                (m["content"] for m in reversed(request.messages) if m["role"] == "user"), ""
            )
            text = solve(problem, cfg.solver_error_rate, request.seed)
            prompt = sum(self._count(m["content"]) for m in request.messages)
            yield request, Sample(text, prompt, self._count(text) + 1, "stop")

    def close(self) -> None:
        """Holds nothing."""
