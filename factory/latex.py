"""Small LaTeX text helpers shared by gold-answer reading and answer parsing."""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")


def boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{…}` / `\\fbox{…}`, in order, braces balanced.
    An unterminated box (e.g. a truncated completion) is skipped."""
    out = []
    for match in _BOX.finditer(text):
        depth, start = 1, match.end()
        for j in range(start, len(text)):
            ch = text[j]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[start:j].strip())
                    break
    return out


def last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None
