"""Small LaTeX text helpers shared by gold-answer reading and answer parsing."""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE = re.compile(r"[{}]")


def boxed_contents(text: str) -> list[str]:
    """Contents of every complete `\\boxed{…}` / `\\fbox{…}`, in order, braces balanced.
    An unterminated box (e.g. a truncated completion) is skipped. One linear pass, so hostile
    inputs like 20,000 unclosed boxes cost milliseconds, not minutes. Only braces are visited
    (found by the regex engine), so a megabyte of digits between two braces costs nothing."""
    opens = {m.end() - 1 for m in _BOX.finditer(text)}  # index of each box's "{"
    found: list[tuple[int, str]] = []
    stack: list[tuple[int, int]] = []  # (content start, depth outside the box)
    depth = 0
    for m in _BRACE.finditer(text):
        i, ch = m.start(), m.group()
        if ch == "{":
            if i in opens:
                stack.append((i + 1, depth))
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if stack and stack[-1][1] == depth:
                start, _ = stack.pop()
                found.append((start, text[start:i].strip()))
    return [content for _, content in sorted(found)]


def last_boxed(text: str) -> str | None:
    boxes = boxed_contents(text)
    return boxes[-1] if boxes else None
