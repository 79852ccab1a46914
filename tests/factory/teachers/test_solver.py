"""The procedural solver teacher: exact on reasoning-gym's arithmetic (checked against the
generators' own gold answers), slips at the configured rate, never raises on odd input."""

from __future__ import annotations

from fractions import Fraction

import pytest

from factory.latex import boxed_contents
from factory.problems import load_problems
from factory.recipe import SourceConfig, TeacherConfig, load_recipe
from factory.teachers import load_teacher
from factory.teachers.base import Request
from factory.teachers.solver import solve

CASES = [
    ("Calculate 4 + 3.", "7", ["4 + 3 = 7"]),
    ("Calculate 9 - 2 * 3.", "3", ["2 * 3 = 6", "9 - 6 = 3"]),
    (
        "State the final answer to the following arithmetic problem: 2 - 6 + 3 =",
        "-1",
        ["2 - 6 = -4", "-4 + 3 = -1"],
    ),
    ("Calculate 12 / 8 + 1.", "5/2", ["12 / 8 = 3/2", "3/2 + 1 = 5/2"]),
    ("Calculate (3 + 4) * -2.", "-14", ["3 + 4 = 7", "7 * -2 = -14"]),
    ("Calculate 7 × 6 ÷ 3.", "14", ["7 * 6 = 42", "42 / 3 = 14"]),
]


@pytest.mark.parametrize(("problem", "answer", "steps"), CASES)
def test_steps_and_answer(problem, answer, steps):
    text = solve(problem)
    assert boxed_contents(text)[-1] == answer
    reasoning = text.split("</think>")[0]
    assert all(step in reasoning.splitlines() for step in steps)


@pytest.mark.parametrize(
    "problem",
    [
        "hello",
        "Calculate 5 / 0.",
        "Calculate ((((1 + 2.",
        "Calculate 1 +.",
        "1" * 5000 + " + 1",
        "",
    ],
)
def test_unreadable_problems_get_a_reply_not_an_exception(problem):
    assert "\\boxed" not in solve(problem)


def test_exact_on_reasoning_gym_problems():
    recipe = load_recipe("arith-solver", ["source.limit=300"])
    problems = list(load_problems(recipe.source))
    assert len(problems) == 300
    for p in problems:
        assert Fraction(boxed_contents(solve(p.problem))[-1]) == Fraction(p.gold), p.problem


def test_slips_at_the_configured_rate_and_deterministically():
    cfg = SourceConfig(
        kind="procedural",
        generators=["chain_sum"],
        limit=400,
        seed=5,
        generator_args={"chain_sum": {"min_terms": 2, "max_terms": 2}},
    )
    problems = list(load_problems(cfg))
    wrong = sum(
        Fraction(boxed_contents(solve(p.problem, 0.25, seed=i))[-1]) != Fraction(p.gold)
        for i, p in enumerate(problems)
    )
    assert 60 <= wrong <= 140  # one operation each: ~25% of 400
    assert solve(problems[0].problem, 0.5, 7) == solve(problems[0].problem, 0.5, 7)


def test_teacher_interface():
    teacher = load_teacher(TeacherConfig(backend="solver", model="arith-solver"))
    requests = [
        Request(f"r{i}", ({"role": "user", "content": f"Calculate {i} + 1."},), 0, i)
        for i in range(3)
    ]
    out = list(teacher.generate(requests, TeacherConfig(backend="solver", model="arith-solver")))
    assert [r.id for r, _ in out] == ["r0", "r1", "r2"]
    assert all(s.finish_reason == "stop" and s.completion_tokens > 0 for _, s in out)
    assert boxed_contents(out[2][1].text)[-1] == "3"
    teacher.close()
