import pytest

from factory.problems.gold import gold_answer


@pytest.mark.parametrize(
    ("raw", "gold"),
    [
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("… so the total is 1,000\n#### 1,000", "1000"),
        ("#### -3.5", "-3.5"),
        ("The area is $\\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
        ("first \\boxed{1} then \\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),
        ("\\frac{\\pi}{4}", "\\frac{\\pi}{4}"),
        ("42", "42"),
        (7, "7"),
        ("", None),
        ("   ", None),
        (None, None),
        ("\\boxed{unterminated", None),
    ],
)
def test_gold_answer(raw, gold):
    assert gold_answer(raw) == gold


def test_every_gsm8k_test_answer_has_a_numeric_gold(shared_data):
    import json
    from fractions import Fraction

    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()
    for line in lines:
        gold = gold_answer(json.loads(line)["answer"])
        Fraction(gold)  # raises if the #### answer was not found or not a number
    assert len(lines) == 1319
