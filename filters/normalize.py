"""Text normalization for dedup, step by step as the recipe lists them (`dedup.*.normalize`).

- `nfkc`: Unicode NFKC (full-width digits, ligatures, Ⅻ → XII, …)
- `case`: case folding
- `whitespace`: runs of whitespace → one space, trimmed (near-dup shingles are words, so this
  only changes exact keys; the dedup kernel also counts ASCII control characters as space)
- `punctuation`: Unicode punctuation (category P*) → space; math symbols (+ = < ^ $) stay
- `latex`: LaTeX spacing and sizing that does not change meaning: `\\,` `\\;` `\\:` `\\!`
  `\\quad` `\\qquad` `\\left` `\\right`; `\\dfrac`/`\\tfrac` → `\\frac`

ASCII text (the common case) takes a bytes fast path with the same result.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Sequence
from functools import cache

_SPACE = re.compile(r"\s+")
_LATEX = re.compile(r"\\(?:[,;:! ]|q?quad(?![A-Za-z])|left(?![A-Za-z])|right(?![A-Za-z]))")
_FRAC = re.compile(r"\\[dt]frac(?![A-Za-z])")
_ASCII_PUNCT = bytes(
    32 if unicodedata.category(chr(b)).startswith("P") else b for b in range(128)
) + bytes(range(128, 256))


@cache
def _punctuation() -> dict[int, str]:
    """Every Unicode punctuation code point → space (built once, on first use: ~0.3 s)."""
    return {
        cp: " " for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P")
    }


def normalize_bytes(text: str, steps: Sequence[str]) -> bytes:
    """`normalize` as UTF-8 (lone surrogates kept as their bytes, so nothing raises)."""
    if "latex" in steps:
        text = _FRAC.sub(r"\\frac", _LATEX.sub(" ", text))
    if text.isascii():
        data = text.encode()
        if "case" in steps:
            data = data.lower()
        if "punctuation" in steps:
            data = data.translate(_ASCII_PUNCT)
        if "whitespace" in steps:
            data = b" ".join(data.split())
        return data
    if "nfkc" in steps:
        text = unicodedata.normalize("NFKC", text)
    if "case" in steps:
        text = text.casefold()
    if "punctuation" in steps:
        text = text.translate(_punctuation())
    if "whitespace" in steps:
        text = _SPACE.sub(" ", text).strip()
    return text.encode("utf-8", "surrogatepass")


def normalize(text: str, steps: Sequence[str]) -> str:
    return normalize_bytes(text, steps).decode("utf-8", "surrogatepass")
