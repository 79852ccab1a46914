"""Language consistency by script: prompts and traces in several languages, hostile text."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from factory.record import Record
from factory.stage import Drop
from filters.language import LanguageConsistency, language_share, script

EN_PROMPT = "Let $x_1$ and $x_2$ be the roots of $x^2-5x+6=0$. Find $x_1^2+x_2^2$."
EN_COT = r"""<think>
We need $x_1^2 + x_2^2$ where $x_1, x_2$ are the roots of $x^2 - 5x + 6 = 0$. By Vieta's
formulas, $x_1 + x_2 = 5$ and $x_1 x_2 = 6$. Then
\[x_1^2 + x_2^2 = (x_1 + x_2)^2 - 2x_1x_2 = 25 - 12 = 13.\]
Let me double-check by factoring: the roots are 3 and 2, and 9 + 4 = 13. Good.
</think>
The answer is \boxed{13}."""

ZH_PROMPT = "已知方程 $x^2 - 5x + 6 = 0$ 的两个根为 $x_1, x_2$，求 $x_1^2 + x_2^2$ 的值。"
ZH_COT = r"""<think>
首先，我们需要求出方程 $x^2 - 5x + 6 = 0$ 的两个根。根据求根公式，$x = \frac{5 \pm 1}{2}$，
所以两个根分别是 $x_1 = 3$ 和 $x_2 = 2$。接下来计算平方和：$3^2 + 2^2 = 9 + 4 = 13$。
也可以用韦达定理验证：两根之和为 5，两根之积为 6，因此平方和等于 \(25 - 12 = 13\)。
</think>
两个根的平方和为 $\boxed{13}$。"""
ZH_PLAIN_MATH = "设x为所求的数，则3x - 7 = 11，所以x = 6。答案是6。"

RU_PROMPT = "Найдите сумму квадратов корней уравнения $x^2 - 5x + 6 = 0$."
RU_COT = r"""<think>
По теореме Виета сумма корней равна 5, а произведение равно 6. Тогда сумма квадратов равна
\[(x_1 + x_2)^2 - 2x_1x_2 = 25 - 12 = 13.\]
Проверим: корни уравнения 2 и 3, и 4 + 9 = 13. Всё сходится.
</think>
Ответ: $\boxed{13}$."""

JA_PROMPT = "方程式 $x^2 - 5x + 6 = 0$ の二つの解の二乗の和を求めなさい。"
JA_COT = (
    "<think>解と係数の関係より、二つの解の和は5、積は6です。"
    "したがって二乗の和は 25 - 12 = 13 になります。</think>答えは $\\boxed{13}$ です。"
)
KO_PROMPT = "방정식 $x^2 - 5x + 6 = 0$ 의 두 근의 제곱의 합을 구하시오."
KO_COT = (
    "<think>근과 계수의 관계에 의해 두 근의 합은 5이고 곱은 6이다. "
    "따라서 제곱의 합은 13이다.</think>답: 13"
)
FR_COT = (
    "<think>D'après les relations de Viète, la somme des racines vaut 5 "
    "et leur produit 6.</think>13"
)
GSM_PROMPT = (
    "Weng earns $12 an hour for babysitting. Yesterday she did 50 minutes. How much did she earn?"
)
GSM_COT = (
    "<think>She earns $12 / 60 = $0.2 per minute, so 50 minutes pay 0.2 * 50 = 10.</think>#### 10"
)
DRIFT = EN_COT.replace("Let me double-check", "让我再用因式分解检查一遍这个结果是否正确，两种方法")

CASES = [
    # (prompt, completion, reason, share kept in meta)
    pytest.param(EN_PROMPT, EN_COT, None, 1.0, id="en_en_latex"),
    pytest.param(ZH_PROMPT, ZH_COT, None, 1.0, id="zh_zh_latex_numbers"),
    pytest.param(ZH_PROMPT, ZH_PLAIN_MATH, None, 1.0, id="zh_zh_variables_outside_math"),
    pytest.param(RU_PROMPT, RU_COT, None, 1.0, id="ru_ru"),
    pytest.param(JA_PROMPT, JA_COT, None, 1.0, id="ja_ja_han_and_kana"),
    pytest.param(KO_PROMPT, KO_COT, None, 1.0, id="ko_ko"),
    pytest.param(GSM_PROMPT, GSM_COT, None, 1.0, id="dollar_amounts_are_not_math"),
    pytest.param(EN_PROMPT, FR_COT, None, 1.0, id="same_script_not_distinguished"),
    pytest.param("$2 + 2 = ?$", EN_COT, None, None, id="prompt_without_letters"),
    pytest.param(EN_PROMPT, "<think>$2+2=4$</think>$\\boxed{4}$", None, None, id="cot_all_math"),
    pytest.param(EN_PROMPT, None, None, None, id="none"),
    pytest.param(EN_PROMPT, "", None, None, id="empty"),
    pytest.param(EN_PROMPT, "😀🤔 👍" * 10, None, None, id="emoji_only"),
    pytest.param(EN_PROMPT, "\ud800\x00 The answer is four \udfff", None, 1.0, id="surrogates"),
    pytest.param(EN_PROMPT, EN_COT * 30_000, None, 1.0, id="10MB_en"),
    pytest.param(ZH_PROMPT, EN_COT, "language_mixed", None, id="zh_prompt_en_cot"),
    pytest.param(RU_PROMPT, EN_COT, "language_mixed", None, id="ru_prompt_en_cot"),
    pytest.param(EN_PROMPT, ZH_COT, "language_mixed", None, id="en_prompt_zh_cot"),
    pytest.param(EN_PROMPT, DRIFT, "language_mixed", None, id="en_cot_drifts_to_zh"),
    pytest.param(ZH_PROMPT, JA_COT, "language_mixed", None, id="zh_prompt_ja_cot"),
    pytest.param(EN_PROMPT, ZH_COT * 50_000, "language_mixed", None, id="10MB_zh"),
    pytest.param(EN_PROMPT, "\\(" * 5_000_000, None, None, id="10MB_unclosed_math"),
]


@pytest.mark.parametrize(("prompt", "completion", "reason", "share"), CASES)
def test_language(prompt, completion, reason, share):
    record = Record(
        problem_id="p",
        source="s",
        problem=prompt,
        gold="13",
        id="x",
        completion=completion,
        finish_reason="stop",
        completion_tokens=100,
        # the template's English must not decide the language of a Chinese problem
        messages=[{"role": "user", "content": f"{prompt}\nPlease reason step by step."}],
    )
    out = LanguageConsistency(SimpleNamespace(min_share=0.9)).process(record)
    if reason is None:
        assert out is record
        assert out.meta["language_share"] == share
    else:
        assert out == Drop(reason)


def test_share_is_a_fraction_of_letters():
    # 10 Han characters and one 5-letter English word: 10 / 15
    assert language_share("中文", "我们来计算这个数的值 check") == pytest.approx(10 / 15)


SCRIPTS = [
    ("a", "LATIN"),
    ("é", "LATIN"),
    ("Ａ", "LATIN"),  # fullwidth
    ("я", "CYRILLIC"),
    ("θ", "GREEK"),
    ("中", "HAN"),
    ("々", "HAN"),
    ("の", "KANA"),
    ("ー", "KANA"),
    ("한", "HANGUL"),
    ("ش", "ARABIC"),
    ("𝑥", None),  # MATHEMATICAL ITALIC SMALL X
    ("ℝ", None),
    ("1", None),
    ("😀", None),
    ("\ud800", None),
]


@pytest.mark.parametrize(("ch", "expected"), SCRIPTS, ids=[repr(c) for c, _ in SCRIPTS])
def test_script(ch, expected):
    assert script(ch) == expected


def test_bad_min_share_fails_at_construction():
    with pytest.raises(ValueError, match="min_share"):
        LanguageConsistency(SimpleNamespace(min_share=90))
