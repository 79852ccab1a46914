"""Gold answers as they appear in real datasets, reduced to the final answer string.

GSM8K ends worked solutions with `#### 42`; MATH-style solutions put it in the last
`\\boxed{}`; procedural generators give the bare answer. Nothing here judges equivalence —
that is the verifier's job — it only finds the final answer text.
"""

from __future__ import annotations

import re

from factory.latex import last_boxed

_GSM8K = re.compile(r"####\s*(.+?)\s*$", re.DOTALL)


def gold_answer(value: object) -> str | None:
    """The final answer inside a dataset's answer field, or None when there is none."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if "####" in text:
        match = _GSM8K.search(text)
        return match.group(1).replace(",", "").strip() if match else None
    if "\\boxed" in text or "\\fbox" in text:
        return last_boxed(text)
    return text
