"""Repetition (rep-n): real-looking traces are kept, loops and restatements are dropped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from factory.stage import Drop
from filters.repetition import Repetition, repeated_ratio, repetition
from tests.helpers import trace

COT = r"""<think>
We need the sum of the squares of the roots of $x^2 - 5x + 6 = 0$. By Vieta's formulas the
roots satisfy $x_1 + x_2 = 5$ and $x_1 x_2 = 6$. Then
\begin{align*}
x_1^2 + x_2^2 &= (x_1 + x_2)^2 - 2 x_1 x_2 \\
&= 25 - 12 \\
&= 13.
\end{align*}
Wait, let me double-check by factoring: $x^2 - 5x + 6 = (x - 2)(x - 3)$, so the roots are 2 and
3, and $4 + 9 = 13$. Both methods agree.
</think>
The answer is $\boxed{13}$."""

ZH_COT = r"""<think>
首先，我们需要求出方程 $x^2 - 5x + 6 = 0$ 的两个根。根据求根公式，$x = \frac{5 \pm 1}{2}$，
所以两个根分别是 $x_1 = 3$ 和 $x_2 = 2$。接下来计算这两个根的平方和：$3^2 + 2^2 = 9 + 4 = 13$。
也可以用韦达定理来验证：两根之和为 $5$，两根之积为 $6$，因此平方和等于 $25 - 12 = 13$。
</think>
两个根的平方和为 $\boxed{13}$。"""

ZH_PROSE = (
    "设这个数为某数，那么根据题意，它的三倍减去七等于十一，也就是说三倍的这个数等于十八。"
    "因此这个数是六。我们再检查一下：六的三倍是十八，十八减去七等于十一，与题目条件相符。"
)

LOOP = "Wait, let me recompute 3 * 4 = 12.\n"

CASES = [
    pytest.param(COT, None, id="english_cot"),
    pytest.param(ZH_COT, None, id="chinese_cot_with_latex"),
    pytest.param(ZH_PROSE, None, id="chinese_prose_no_spaces"),
    pytest.param("", None, id="empty"),
    pytest.param(None, None, id="none"),
    pytest.param("7", None, id="one_word"),
    pytest.param("👍 \\boxed{4}", None, id="emoji"),
    pytest.param("\ud800\udc00 x \udfff", None, id="lone_surrogates"),
    pytest.param(COT[:400] + LOOP * 50 + "\\boxed{12}", "repetitive", id="loop"),
    pytest.param(COT + "\n" + COT, "repetitive", id="said_twice"),
    pytest.param(COT + "a" * 5_000, "repetitive", id="char_run_after_prose"),
    pytest.param("a" * 100_000, "repetitive", id="char_run"),
    pytest.param("哈" * 1_000, "repetitive", id="cjk_char_run"),
    pytest.param("我再检查一下这个结果是否正确。" * 40, "repetitive", id="cjk_sentence_loop"),
    pytest.param("😀" * 10_000, "repetitive", id="emoji_run"),
    pytest.param("a" * 10_000_000, "repetitive", id="10MB_run"),
    pytest.param(COT * 20_000, "repetitive", id="10MB_text"),
]


@pytest.mark.parametrize(("completion", "reason"), CASES)
def test_repetition(completion, reason):
    record = trace(completion, completion_tokens=100)
    out = Repetition(SimpleNamespace(n=4, max_ratio=0.4)).process(record)
    if reason is None:
        assert out is record
        assert 0.0 <= out.meta["repetition"] <= 0.4
    else:
        assert out == Drop(reason)


RATIOS = [
    # 8 words, 5 four-grams, the last repeats the first
    pytest.param("a b c d a b c d", 4, 0.2, id="one_repeat"),
    pytest.param("A b C d a B c D", 4, 0.2, id="case_folded"),
    pytest.param(
        "\\frac{a}{b} \\frac{c}{d} \\left( e \\right)", 2, 0.0, id="latex_commands_ignored"
    ),
    pytest.param("one two three", 4, 0.0, id="shorter_than_n"),
    pytest.param("x " * 50, 4, 46 / 47, id="loop"),
]


@pytest.mark.parametrize(("text", "n", "expected"), RATIOS)
def test_repetition_value(text, n, expected):
    assert repetition(text, n) == pytest.approx(expected)


def test_repeated_ratio_units():
    assert repeated_ratio("abab", 2) == pytest.approx(1 / 3)  # ab ba ab
    assert repeated_ratio(["ab", "ab", "ab"], 2) == pytest.approx(1 / 2)


def test_english_cot_scores_low():
    assert repetition(COT) < 0.15
    assert repetition(COT + "\n" + COT) > 0.45


@pytest.mark.parametrize(("n", "max_ratio"), [(0, 0.4), (4, 1.5)], ids=["n_zero", "ratio_above_1"])
def test_bad_config_fails_at_construction(n, max_ratio):
    with pytest.raises(ValueError, match="repetition"):
        Repetition(SimpleNamespace(n=n, max_ratio=max_ratio))
