"""Keep completions written in the prompt's script (DeepSeek-R1's language consistency).

R1's language-consistency reward is the share of the chain of thought in the target language.
Without a language-ID model this filter approximates it by Unicode script:
1. Both texts are stripped of what is not prose: `<think>` tags, code (```…``` and `…`),
   math (`$$…$$`, `\\(…\\)`, `\\[…\\]`, and `$…$` read as pandoc does, so that "$12 an hour
   … $5" stays prose), LaTeX commands (`\\frac`) and Latin or Greek letters standing alone
   (`x`, `θ`, the x of `设x为`: variables, even outside math delimiters).
2. The prompt's script is the one holding most of its remaining letters; Han together with
   kana is Japanese when kana are at least 10% of the two, Han alone is Chinese.
3. The completion's share is the fraction of its remaining letters in that script (Han and
   kana both count for Japanese; a Chinese prompt answered in Japanese loses its kana).
Scripts are read from the first word of each letter's Unicode name (LATIN, CYRILLIC, GREEK,
ARABIC, HEBREW, DEVANAGARI, THAI, HANGUL, CJK…), cached per code point; letters of other
kinds (MATHEMATICAL ITALIC SMALL X, DOUBLE-STRUCK CAPITAL R) are ignored.

What this does not do: languages that share a script are not told apart (an English prompt
answered in French passes; Han counts for Japanese, so a Japanese prompt answered in Chinese
passes). The share counts letters, not words, so in CJK text a few Latin words weigh more
than their word count (one English word is ~5 letters, one Chinese word ~2 characters). The
prompt is `record.problem`, not the rendered chat: template text such as an English "reason
step by step" after a Chinese problem must not decide the language.

Reason code: `language_mixed` (share below `min_share`). Kept records carry
`meta["language_share"]`, None when the prompt or the completion has no letters to judge.
cfg: `min_share: float` (recommended 0.9).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

from factory.record import Record
from factory.stage import Drop, Filter

_NOT_PROSE = re.compile(
    r"```.*?```"  # fenced code
    r"|`[^`\n]*`"  # inline code
    r"|\$\$[^$]*\$\$"  # $$display math$$
    r"|\$(?![\s$])[^$\n]*(?<![\s\\])\$(?!\d)"  # $inline$ as pandoc reads it: not "$5 or $6"
    r"|\\\([^\\]*(?:\\[^()][^\\]*)*\\\)"  # \( … \), stopping at the next \( (stays linear)
    r"|\\\[[^\\]*(?:\\[^\[\]][^\\]*)*\\\]"  # \[ … \]
    r"|</?think>"
    r"|\\[A-Za-z]+",  # LaTeX commands outside math
    re.DOTALL,
)
# a Latin or Greek letter standing alone (between non-letters, or inside CJK text as in 设x为)
# is a variable (x, n, θ), not a word of prose
_LONE_LETTER = re.compile(
    r"(?<![A-Za-z\u00c0-\u024f\u0370-\u03ff])[A-Za-z\u0391-\u03a9\u03b1-\u03c9]"
    r"(?![A-Za-z\u00c0-\u024f\u0370-\u03ff])"
)
_SCRIPTS = {
    "LATIN", "GREEK", "CYRILLIC", "ARMENIAN", "GEORGIAN", "HEBREW", "ARABIC", "SYRIAC",
    "THAANA", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU",
    "KANNADA", "MALAYALAM", "SINHALA", "THAI", "LAO", "TIBETAN", "MYANMAR", "KHMER",
    "MONGOLIAN", "ETHIOPIC", "HANGUL",
}  # fmt: skip
_ALIASES = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",  # 々
    "HIRAGANA": "KANA",
    "KATAKANA": "KANA",
    "KATAKANA-HIRAGANA": "KANA",  # ー
}


@lru_cache(maxsize=1 << 16)
def script(ch: str) -> str | None:
    """The script of letter `ch` (LATIN, HAN, KANA, …), or None for non-letters."""
    if not ch.isalpha():
        return None
    words = unicodedata.name(ch, "").split()
    if words and words[0] in ("FULLWIDTH", "HALFWIDTH"):
        words = words[1:]
    if not words:
        return None
    return _ALIASES.get(words[0]) or (words[0] if words[0] in _SCRIPTS else None)


def script_counts(text: str) -> Counter:
    """Letters per script in the prose of `text` (math, code and lone letters left out)."""
    prose = _LONE_LETTER.sub("", _NOT_PROSE.sub(" ", text))
    counts: Counter = Counter()
    for ch, k in Counter(prose).items():
        if (s := script(ch)) is not None:
            counts[s] += k
    return counts


def target_scripts(counts: Counter) -> frozenset[str] | None:
    """The scripts of the dominant language in `counts`, or None when there are no letters."""
    han, kana = counts.get("HAN", 0), counts.get("KANA", 0)
    groups = {frozenset([s]): k for s, k in counts.items() if s not in ("HAN", "KANA")}
    if kana and kana >= 0.1 * (han + kana):
        groups[frozenset(["HAN", "KANA"])] = han + kana  # Japanese
    else:
        groups.update({frozenset([s]): k for s, k in (("HAN", han), ("KANA", kana)) if k})
    return max(groups, key=groups.__getitem__) if groups else None


def language_share(prompt: str, completion: str) -> float | None:
    """Share of the completion's letters in the prompt's script; None if either has none."""
    target = target_scripts(script_counts(prompt))
    counts = script_counts(completion)
    total = sum(counts.values())
    if target is None or not total:
        return None
    return sum(counts[s] for s in target) / total


class LanguageConsistency(Filter):
    name = "language"

    def __init__(self, cfg) -> None:
        super().__init__()
        self.min_share = cfg.min_share
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"language: min_share must be in [0, 1], got {self.min_share!r}")

    def process(self, record: Record) -> Record | Drop:
        share = language_share(record.problem or "", record.completion or "")
        if share is not None and share < self.min_share:
            return Drop("language_mixed")
        record.meta = {**record.meta, "language_share": None if share is None else round(share, 4)}
        return record
