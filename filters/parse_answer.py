"""Split a completion into reasoning and final answer, and build the training turn.

Extraction policy (explicit, tested in tests/filters/test_parse_answer.py):
- `finish_reason == "length"` → drop `truncated`: a cut-off answer is never counted correct.
- Think block: exactly one `</think>` marks the end of reasoning; the opening `<think>` may be
  missing (R1-style chat templates put it in the prompt). Two openings or closings →
  `malformed_think`; an opening without a close → `unclosed_think`. Without any tags,
  `parse.think=required` drops `no_think`; `optional` takes the text before the final-answer
  line as the reasoning.
- The final answer is looked for only *after* the reasoning: the last `\\boxed{}`, else a
  `#### N` line, else "the (final) answer is N". None → `no_answer`. Several different boxed
  answers → `multiple_answers` (answer spraying is never rewarded). With `parse.answer=code`
  the answer is the last ```python (or plain ```) block after the reasoning; none → `no_code`.
- Empty reasoning → `empty_reasoning`: a bare answer is not a reasoning trace.
- `parse.answer=text` (knowledge data: direct answers): the answer is the whole response after
  the think block (or the whole completion without tags), stripped; blank → `no_answer`. The
  think-tag rules above still apply, and the reasoning may be empty (no `empty_reasoning`).
The assistant turn written to `messages` is normalized to
`<think>\\n{reasoning}\\n</think>\\n\\n{answer text}`; for a text answer without reasoning
that is an empty block, `<think>\\n\\n</think>\\n\\n{answer}` (Qwen3's non-thinking form), so
every training turn holds exactly one think block.
"""

from __future__ import annotations

import dataclasses
import re

from factory.latex import boxed_contents
from factory.recipe import ParseConfig
from factory.record import Record
from factory.stage import Drop, Filter

_HASHES = re.compile(r"^[ \t]*####[ \t]*(.+?)[ \t]*$", re.MULTILINE)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|:)\s*:?\s*\$?([^\n$]+?)\$?\s*\.?\s*$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclasses.dataclass(frozen=True)
class Parsed:
    reasoning: str
    tail: str  # the text after the reasoning that states the answer
    answer: str
    think_tags: str  # "both" | "close_only" | "none"


def final_answer(tail: str) -> str | Drop:
    """The final answer stated in `tail`, or a Drop (`no_answer`, `multiple_answers`)."""
    boxes = [b for b in boxed_contents(tail) if b]
    if boxes:
        if len({_norm(b) for b in boxes}) > 1:
            return Drop("multiple_answers")
        return boxes[-1]
    hashes = _HASHES.findall(tail)
    if hashes:
        return hashes[-1].strip()
    stated = _ANSWER_IS.findall(tail)
    if stated:
        return stated[-1].strip().rstrip(".").strip()
    return Drop("no_answer")


def _norm(answer: str) -> str:
    return re.sub(r"\s+", "", answer)


def final_code(tail: str) -> str | Drop:
    """The program in `tail`: its last ```python block (or plain ``` block), else `no_code`."""
    from filters.verify_code import extract_code

    code = extract_code(tail)
    return code if code and code.strip() else Drop("no_code")


def _answer_start(text: str, kind: str = "math") -> int | None:
    """Where the final-answer statement begins in untagged text (line start), if anywhere."""
    if kind == "code":
        fences = [m.start() for m in re.finditer(r"^[ \t]*```", text, re.MULTILINE)]
        return fences[-2] if len(fences) >= 2 else None  # the opening of the last block
    starts = [m.start() for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text)]
    starts += [m.start() for m in _HASHES.finditer(text)]
    starts += [m.start() for m in _ANSWER_IS.finditer(text)]
    if not starts:
        return None
    return text.rfind("\n", 0, max(starts)) + 1  # the line holding the last statement


def split(text: str, think: str, kind: str = "math") -> Parsed | Drop:
    opens, closes = text.count("<think>"), text.count("</think>")
    if opens > 1 or closes > 1:
        return Drop("malformed_think")
    if closes == 1:
        before, tail = text.split("</think>")
        tags = "both" if opens == 1 else "close_only"
        if opens == 1:
            pre, _, before = before.partition("<think>")
            if pre.strip():
                return Drop("malformed_think")  # text before <think>: not one clean block
    elif opens == 1:
        return Drop("unclosed_think")
    elif think == "required":
        return Drop("no_think")
    elif kind == "text":  # a direct answer: all of it is the answer
        before, tail, tags = "", text, "none"
    else:
        start = _answer_start(text, kind)
        if start is None:
            return Drop("no_code" if kind == "code" else "no_answer")
        before, tail, tags = text[:start], text[start:], "none"
    if kind == "text":
        answer = tail.strip()
        return Parsed(before.strip(), answer, answer, tags) if answer else Drop("no_answer")
    answer = final_code(tail) if kind == "code" else final_answer(tail)
    if isinstance(answer, Drop):
        return answer
    reasoning = before.strip()
    if not reasoning:
        return Drop("empty_reasoning")
    return Parsed(reasoning, tail.strip(), answer, tags)


class ParseAnswer(Filter):
    name = "parse"

    def __init__(self, cfg: ParseConfig) -> None:
        super().__init__()
        self.cfg = cfg

    def process(self, record: Record) -> Record | Drop:
        if record.finish_reason == "length":
            return Drop("truncated")
        text = (record.completion or "").strip()
        if not text:
            return Drop("empty")
        parsed = split(text, self.cfg.think, self.cfg.answer)
        if isinstance(parsed, Drop):
            return parsed
        assistant = f"<think>\n{parsed.reasoning}\n</think>\n\n{parsed.tail}"
        record.reasoning, record.answer = parsed.reasoning, parsed.answer
        record.messages = [*record.messages, {"role": "assistant", "content": assistant}]
        record.meta = {**record.meta, "think_tags": parsed.think_tags}
        return record
