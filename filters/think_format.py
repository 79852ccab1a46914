"""Check the shape of a reasoning completion: one think block first, then a final answer.

The accepted shape is `<think>reasoning</think>final answer`, with only whitespace before
`<think>`. As in `filters/parse_answer.py`, the opening tag may be missing (R1-style chat
templates put `<think>` in the prompt, so the completion starts inside the block): a completion
with exactly one `</think>` and no `<think>` is one block that starts at the first character.
This filter checks form only; whether the text after `</think>` states an extractable answer
(`\\boxed{}`, `####`) is `parse`'s question.

Reason codes, checked in this order:
- `truncated`: `finish_reason == "length"`; a cut-off trace is never well formed.
- `multiple_think`: more than one `<think>` or more than one `</think>`.
- `unclosed_think`: a `<think>` that no later `</think>` closes.
- `missing_think`: no tags at all and `cfg.require_think` is true.
- `text_before_think`: anything but whitespace before `<think>`.
- `empty_think`: only whitespace between the tags.
- `no_final_answer`: only whitespace after `</think>` (or an empty untagged completion).

cfg: `require_think: bool` (recommended True). When False, a completion without any think
tag passes if it is not blank; malformed tags still fail.
"""

from __future__ import annotations

from factory.record import Record
from factory.stage import Drop, Filter

OPEN, CLOSE = "<think>", "</think>"


def check(text: str, require_think: bool = True) -> str | None:
    """The reason `text` is not one think block followed by an answer, or None if it is."""
    opens, closes = text.count(OPEN), text.count(CLOSE)
    if opens > 1 or closes > 1:
        return "multiple_think"
    end = text.find(CLOSE)
    start = text.find(OPEN)
    if opens and (not closes or start > end):
        return "unclosed_think"  # `<think>` never closed, or only after a `</think>`
    if not closes:
        if require_think:
            return "missing_think"
        return None if text.strip() else "no_final_answer"
    if opens and text[:start].strip():
        return "text_before_think"
    body = text[start + len(OPEN) : end] if opens else text[:end]
    if not body.strip():
        return "empty_think"
    if not text[end + len(CLOSE) :].strip():
        return "no_final_answer"
    return None


class ThinkFormat(Filter):
    name = "think_format"

    def __init__(self, cfg) -> None:
        super().__init__()
        self.require_think = cfg.require_think

    def process(self, record: Record) -> Record | Drop:
        if record.finish_reason == "length":
            return Drop("truncated")
        reason = check(record.completion or "", self.require_think)
        return record if reason is None else Drop(reason)
