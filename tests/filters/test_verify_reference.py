"""Table of direct answers and references, and the reference verifier's verdict for each."""

from __future__ import annotations

import time

import pytest

from factory.recipe import load_recipe
from filters.verify import build_checkers
from filters.verify_reference import MAX_CHARS, ReferenceChecker, normalize, reference_verdict
from tests.helpers import trace

MATCH = ("pass", "reference_match")
MISMATCH = ("fail", "reference_mismatch")

CASES = [
    # (answer, gold, verdict)
    ("Paris", "Paris", MATCH),
    ("The capital of France is Paris.", "Paris", MATCH),
    ("paris!!!", "PARIS", MATCH),
    ("London", "Paris", MISMATCH),
    ("Parisian food is famous.", "Paris", MISMATCH),  # whole words only
    ("It is Par.", "Paris", MISMATCH),
    # aliases separated by |
    ("Da Vinci painted it.", "Leonardo da Vinci|da Vinci", MATCH),
    ("Leonardo da Vinci", "Leonardo da Vinci|da Vinci", MATCH),
    ("Michelangelo", "Leonardo da Vinci|da Vinci", MISMATCH),
    ("Einstein developed it.", "Albert Einstein|Einstein", MATCH),
    ("the Pacific", "Pacific Ocean|Pacific", MATCH),
    # articles and punctuation
    ("Sun", "the Sun", MATCH),
    ("It is the sun.", "Sun", MATCH),
    ("An apple a day.", "apple", MATCH),
    ("Mt. Everest", "Mt Everest", MATCH),
    ("It's \u201cthe Titanic\u201d.", "Titanic", MATCH),
    ("South-America", "South America", MATCH),  # a hyphen separates words like a space
    # numbers: thousands separators, number words 0-20 and tens
    ("1,000", "1000", MATCH),
    ("About 1000 people.", "1,000", MATCH),
    ("There are twelve months.", "12", MATCH),
    ("12 months", "twelve", MATCH),
    ("Zero degrees Celsius.", "0", MATCH),
    ("It has twenty legs.", "20", MATCH),
    ("Sixty minutes.", "60", MATCH),
    ("112", "12", MISMATCH),
    ("3.14", "3.14", MATCH),
    ("3.141", "3.14", MISMATCH),
    ("1945.", "1945", MATCH),
    # unicode: NFKC, case folding, other scripts
    ("H\u2082O", "H2O", MATCH),  # subscript two
    ("\uff30\uff41\uff52\uff49\uff53", "Paris", MATCH),  # full-width letters
    ("STRASSE", "straße", MATCH),  # case folding
    ("Caf\u0065\u0301 de Flore", "Café", MATCH),  # decomposed é
    ("\u0928\u092e\u0938\u094d\u0924\u0947", "\u0928\u092e\u0938\u094d\u0924\u0947", MATCH),
    ("\u0915\u092e", "\u0915\u093e\u092e", MISMATCH),  # vowel sign kept: not the same word
    ("首都是东京", "东京", MISMATCH),  # unspaced Chinese: one word, not a span (judge's job)
    ("东京", "东京", MATCH),
    # empty and missing
    ("", "Paris", ("fail", "no_answer")),
    ("...", "Paris", ("fail", "no_answer")),
    (None, "Paris", ("fail", "no_answer")),
    ("Paris", None, ("unverifiable", "no_reference")),
    ("Paris", "", ("unverifiable", "no_reference")),
    ("Paris", " | ", ("unverifiable", "no_reference")),
    ("A", "a", ("unverifiable", "no_reference")),  # only an article: nothing left to match
    # known limits, kept visible: containment does not read negation or hedging
    ("Not Paris.", "Paris", MATCH),
    ("Paris or London", "Paris", MATCH),
]


@pytest.mark.parametrize(("answer", "gold", "expected"), CASES)
def test_verdict(answer, gold, expected):
    assert reference_verdict(answer, gold) == expected


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("The capital of France is Paris.", "capital of france is paris"),
        ("It's 1,000,000.", "it s 1000000"),
        ("  an   Apple\tA\nday ", "apple day"),
        ("eleven, Twelve", "11 12"),
        ("the the a", ""),
    ],
)
def test_normalize(text, normalized):
    assert normalize(text) == normalized


def test_huge_answers_are_fast():
    normalize("warm up")  # builds the word pattern once (~0.3 s)
    cases = [
        ("Paris " + "x" * 1_000_000, ("unverifiable", "answer_too_big")),
        ("a " * 500_000, ("unverifiable", "answer_too_big")),
        ("word " * (MAX_CHARS // 5 - 1) + "Paris", MATCH),  # just under the limit: verified
        ("a " * (MAX_CHARS // 2), ("fail", "no_answer")),
    ]
    for answer, expected in cases:
        seconds = []
        for _ in range(3):  # best of three: the machine may be busy with other work
            started = time.perf_counter()
            assert reference_verdict(answer, "Paris") == expected
            seconds.append(time.perf_counter() - started)
        assert min(seconds) < 0.05, (len(answer), seconds)
    assert reference_verdict("Paris", "x" * (MAX_CHARS + 1)) == ("unverifiable", "gold_too_big")


def test_checker_judges_records_and_is_built_by_name():
    checker = ReferenceChecker()
    records = [trace("c", answer="Paris", gold="Paris"), trace("c", answer="Rome", gold="Paris")]
    assert checker.check(records) == [MATCH, MISMATCH]
    checker.close()
    built = build_checkers(load_recipe("knowledge"))
    assert [c.name for c in built] == ["reference"]
    # with the judge for paraphrases: its general-knowledge prompt has the slots it needs
    both = load_recipe("knowledge", ["verify.verifiers=[reference, judge]"])
    assert [c.name for c in build_checkers(both)] == ["reference", "judge"]  # judge loads lazily
    assert "{gold}" in both.judge_prompt() and len(both.fingerprint()) == 16
