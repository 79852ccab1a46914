"""Reference match: does a direct answer contain the reference answer (SQuAD-style)?

For knowledge data (`parse.answer=text`): the answer is a short free-text reply ("The capital
of France is Paris.") and `record.gold` the reference, possibly several accepted spellings
separated by `|` ("Leonardo da Vinci|da Vinci"). Both sides are normalized the way SQuAD's
evaluation does, plus numbers and Unicode:
- NFKC and case folding (`H₂O` → `h2o`, full-width letters → ASCII);
- thousands separators between digit groups dropped (`1,000` → `1000`);
- punctuation and symbols dropped: text is split into words of letters, digits and combining
  marks (so Devanagari vowel signs stay inside their word), a decimal number (`3.14`) is one
  word;
- the articles `a`, `an`, `the` dropped;
- number words `zero`…`twenty` and `thirty`…`ninety` read as digits (`twelve` == `12`).

The record passes (`reference_match`) when any alias appears in the normalized answer as a
whole-word span ("paris" in "capital of france is paris", not "par" in "paris"); otherwise
`reference_mismatch`. No reference (no gold, or every alias normalizes to nothing, e.g. a
bare "A") is `unverifiable`/`no_reference`; an empty answer is `fail`/`no_answer`. As with the
math verifier, an answer (or reference) over `MAX_CHARS` characters is refused before any
work, `unverifiable`/`answer_too_big` (`gold_too_big`): normalizing costs up to ~1 µs per
character in Python, and 10,000 characters are far beyond a direct answer (set
`filters.length.max_tokens` to drop long replies earlier, as `too_long`).

What this does not cover: paraphrases and synonyms ("the organ that pumps blood" for
"heart"), compound number words ("twenty-one" is two words, not 21: list such spellings as
aliases), text without spaces between words (Chinese, Japanese, Thai: "首都是东京" is one
word, so "东京" is not found in it), units and conversions, and negation or hedging: "not Paris" and "Paris or London"
both contain "paris" and pass. Use the `judge` verifier for those (`verify.verifiers=[reference,
judge]` records both verdicts).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

from factory.record import Record

MAX_CHARS = 10_000  # longer answers or references are refused (see the module docstring)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
_TENS = {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70"}
_TENS |= {"eighty": "80", "ninety": "90"}
_NUMBER_WORDS = {word: str(i) for i, word in enumerate(_ONES.split())} | _TENS
# whole words of the space-joined text
_ARTICLE = re.compile(r"(?<!\S)(?:an?|the)(?!\S)")
_NUMBER_WORD = re.compile(r"(?<!\S)(?:" + "|".join(sorted(_NUMBER_WORDS)) + r")(?!\S)")


@lru_cache(maxsize=1)
def _words() -> re.Pattern[str]:
    """Words: a decimal number, or a run of letters, digits and combining marks (Python's \\w
    leaves marks out, which would split "नमस्ते" and match "काम" against "कम")."""
    marks, start, prev = [], None, None
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)).startswith("M"):
            if start is None:
                start = cp
            prev = cp
        elif start is not None:
            marks.append(f"\\U{start:08x}-\\U{prev:08x}")
            start = None
    return re.compile(rf"\d+(?:\.\d+)+|(?:[^\W_]|[{''.join(marks)}])+")


def normalize(text: str) -> str:
    """`text` as space-separated normalized words (see the module docstring)."""
    text = _THOUSANDS.sub("", unicodedata.normalize("NFKC", text).casefold())
    joined = " ".join(_words().findall(text))
    joined = _NUMBER_WORD.sub(lambda m: _NUMBER_WORDS[m[0]], _ARTICLE.sub("", joined))
    return " ".join(joined.split())


def aliases(gold: str | None) -> list[str]:
    """The reference's accepted spellings, normalized; blank ones left out."""
    return [n for alias in (gold or "").split("|") if (n := normalize(alias))]


def reference_verdict(answer: str | None, gold: str | None) -> tuple[str, str]:
    if len(gold or "") > MAX_CHARS:
        return "unverifiable", "gold_too_big"
    if len(answer or "") > MAX_CHARS:
        return "unverifiable", "answer_too_big"
    accepted = aliases(gold)
    if not accepted:
        return "unverifiable", "no_reference"
    said = normalize(answer or "")
    if not said:
        return "fail", "no_answer"
    padded = f" {said} "
    if any(f" {alias} " in padded for alias in accepted):
        return "pass", "reference_match"
    return "fail", "reference_mismatch"


class ReferenceChecker:
    name = "reference"

    def check(self, records: list[Record]) -> list[tuple[str, str]]:
        return [reference_verdict(r.answer, r.gold) for r in records]

    def close(self) -> None:
        """Holds nothing."""
