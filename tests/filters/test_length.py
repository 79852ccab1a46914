"""Length bounds: the teacher's token count when known, else the regex estimate."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from factory.stage import Drop
from filters.length import LengthBounds, approx_tokens
from tests.helpers import trace

COT = (
    "<think>\nLet $x_1, x_2$ be the roots of $x^2 - 5x + 6 = 0$. By Vieta, "
    "$x_1 + x_2 = 5$ and $x_1 x_2 = 6$, so $x_1^2 + x_2^2 = 25 - 12 = 13$.\n</think>\n"
    "The answer is $\\boxed{13}$."
)

CASES = [
    # (completion, completion_tokens, min_tokens, max_tokens, reason)
    pytest.param("x", 100, 32, None, None, id="teacher_count_wins_over_text"),
    pytest.param(COT, 10, 32, None, "too_short", id="teacher_count_short"),
    pytest.param(COT, 5000, 32, 4096, "too_long", id="teacher_count_long"),
    pytest.param(COT, 32, 32, 4096, None, id="at_min"),
    pytest.param(COT, 4096, 32, 4096, None, id="at_max"),
    pytest.param(COT, 10**9, 32, None, None, id="no_upper_bound"),
    pytest.param(COT, None, 32, None, None, id="estimated_cot"),
    pytest.param("The answer is 7.", None, 32, None, "too_short", id="estimated_short"),
    pytest.param(COT, None, 1, 20, "too_long", id="estimated_long"),
    pytest.param(None, None, 1, None, "too_short", id="none"),
    pytest.param("", None, 0, None, None, id="empty_min_zero"),
    pytest.param("😀" * 100, None, 100, 100, None, id="emoji_one_each"),
    pytest.param("\ud800" * 50 + "\x00", None, 1, 100, None, id="lone_surrogates"),
    pytest.param("word " * 2_000_000, None, 32, 32_768, "too_long", id="10MB"),
]


@pytest.mark.parametrize(("completion", "tokens", "lo", "hi", "reason"), CASES)
def test_length(completion, tokens, lo, hi, reason):
    record = trace(completion, completion_tokens=tokens)
    out = LengthBounds(SimpleNamespace(min_tokens=lo, max_tokens=hi)).process(record)
    assert out == (record if reason is None else Drop(reason))


ESTIMATES = [
    pytest.param("The answer is 7.", 5, id="words_digit_period"),
    pytest.param("x_1 + 12", 6, id="subscript_and_digits_split"),
    pytest.param("understanding", 3, id="long_word_in_pieces_of_6"),
    pytest.param("三角形的面积", 6, id="cjk_one_per_character"),
    pytest.param("\\frac{1}{2}", 8, id="latex"),
    pytest.param(" \n\t", 0, id="whitespace"),
]


@pytest.mark.parametrize(("text", "expected"), ESTIMATES)
def test_approx_tokens(text, expected):
    assert approx_tokens(text) == expected


@pytest.mark.parametrize(("lo", "hi"), [(-1, None), (10, 5)], ids=["negative_min", "max_below_min"])
def test_bad_bounds_fail_at_construction(lo, hi):
    with pytest.raises(ValueError, match="min_tokens"):
        LengthBounds(SimpleNamespace(min_tokens=lo, max_tokens=hi))
