"""Drop completions that repeat themselves: degenerate loops, restated paragraphs.

The measure is rep-n of Welleck et al. 2019 ("Neural Text Generation with Unlikelihood
Training", seq-rep-n): the share of the completion's n-grams that repeat an n-gram seen earlier
in it, `1 - distinct n-grams / all n-grams`. It counts n-grams, not characters, unlike Gopher's
"duplicate n-gram character fraction" (Rae et al. 2021, Table A1; datatrove's
`GopherRepetitionFilter`), whose thresholds (0.10-0.15 for 5- to 10-grams) are tuned on web
pages; math restates expressions by design (`&= \\frac{…}` chains) and would fail them.

Threshold: a text that says everything twice scores about 0.5, a loop tends to 1.0. Reference
solutions at n=4 score: MATH-500 median 0.03, p99 0.32, max 0.37 (6 of 500 above 0.3, all
display math restating expressions step by step); GSM8K median 0.0, max 0.32 (1 of 7,473 above
0.3). So `max_ratio` 0.4 keeps every clean reference solution and still drops a trace that
restates itself wholesale; 0.3 costs about 1% of sound MATH-style derivations. Long R1-style
traces ("wait, let me check") have not been measured here and will score higher than short
solutions: tune the bound on real traces with `meta["repetition"]`, which kept records carry.

Units: lower-cased word pieces (`\\w` runs, split every 20 characters so that a spaceless
run like "aaaa…" becomes repeated pieces), with LaTeX command names (`\\frac`, `\\left`)
removed as markup. When under 5% of the characters are spaces or newlines (Chinese or Japanese
prose, a loop of one character) the units are characters and the n-grams 2n characters long
(a Chinese word is about 2 characters), which catches "哈哈哈…" and a repeated line. Every
n-gram is hashed once into a set: O(length). Texts over 1M characters (no teacher emits that
much) are measured on their last 1M characters, where a loop that long would be.

Reason code: `repetitive` (ratio above `max_ratio`).
cfg: `n: int` (recommended 4), `max_ratio: float` (recommended 0.4).
"""

from __future__ import annotations

import re

from factory.record import Record
from factory.stage import Drop, Filter

_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")  # \frac, \left: markup, not words
_WORD = re.compile(r"\w{1,20}")
_WINDOW = 1_000_000
_MIN_SPACE_SHARE = 0.05


def repeated_ratio(units: str | list[str], n: int) -> float:
    """Share of the n-grams of `units` (characters or words) that occurred earlier."""
    total = len(units) - n + 1
    if total <= 0:
        return 0.0
    if isinstance(units, str):
        distinct = len({units[i : i + n] for i in range(total)})
    else:
        distinct = len(set(zip(*(units[i:] for i in range(n)), strict=False)))  # shifted copies
    return 1.0 - distinct / total


def repetition(text: str, n: int = 4) -> float:
    """rep-n of `text` over words, or over 2n-character n-grams when it has few spaces."""
    text = text[-_WINDOW:]
    if not text:
        return 0.0
    spaces = text.count(" ") + text.count("\n")
    if spaces < _MIN_SPACE_SHARE * len(text):
        return repeated_ratio(text, 2 * n)
    return repeated_ratio(_WORD.findall(_LATEX_COMMAND.sub(" ", text).lower()), n)


class Repetition(Filter):
    name = "repetition"

    def __init__(self, cfg) -> None:
        super().__init__()
        self.n, self.max_ratio = cfg.n, cfg.max_ratio
        if self.n < 1 or not 0.0 <= self.max_ratio <= 1.0:
            raise ValueError(
                f"repetition: need n >= 1 and 0 <= max_ratio <= 1, "
                f"got n={self.n!r}, max_ratio={self.max_ratio!r}"
            )

    def process(self, record: Record) -> Record | Drop:
        ratio = repetition(record.completion or "", self.n)
        if ratio > self.max_ratio:
            return Drop("repetitive")
        record.meta = {**record.meta, "repetition": round(ratio, 4)}
        return record
