"""Journey learning: a failed and a verified sample of one problem become one assistant turn.

The turn reads `<think>` wrong attempt, reflection bridge, correct path `</think>` final answer:
the model sees a mistake being noticed and repaired, not only clean solutions.

- `load_bridges`: the reflection phrasings, one template per line of a file (prompts are files);
  the only slot is `{wrong_answer}`.
- `first_wrong_step` / `cut_wrong_attempt`: where the wrong attempt goes wrong. Lines of an
  arithmetic trace that state `expr = number` (digits, + - * / x × ÷ ·, parentheses, decimals,
  thousands commas, `$` amounts) are evaluated exactly with `Fraction` by a small
  recursive-descent parser (never `eval`), and the attempt is cut just after the first line
  whose stated result is wrong. The checker is conservative: anything it is unsure of
  (a symbol bound to the expression such as `^`, `%`, `}` or a word like "times" next to it,
  implicit multiplication, an expression over 200 characters, 40 levels of nesting) is
  skipped, never called wrong, and a stated decimal that rounds or truncates the exact value
  is right. No wrong step found → the whole attempt (its final-answer statement removed).
- `build_journey`: the journey record (kind `journey`, id from both source ids).
- `Journey`: the barrier stage that pairs the samples, re-parses and re-verifies every journey
  and caps their share of the output.

Not covered: algebra, units and word-problem logic (a trace that sets the problem up wrongly
but computes correctly is cut whole), non-math answers.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from math import floor
from typing import Any

from factory.errors import RecipeError
from factory.recipe import JourneyConfig
from factory.record import Record
from factory.stage import Drop, Stage
from filters.parse_answer import ParseAnswer, split
from filters.verify import Verify

SLOTS = frozenset({"wrong_answer"})
_SLOT = re.compile(r"\{([^{}]*)\}")


def load_bridges(text: str, path: str = "journey.bridges") -> list[str]:
    """The bridge templates in `text` (the file at `path`): one per non-empty line, `#` lines
    are comments. An empty file, an unknown `{slot}` or a think tag is a RecipeError."""
    bridges = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        unknown = [s for s in _SLOT.findall(line) if s not in SLOTS]
        if unknown:
            raise RecipeError(
                f"journey.bridges: {path}:{lineno}: unknown slot {{{unknown[0]}}} "
                f"(allowed: {{wrong_answer}}); fix the template or remove the braces"
            )
        if "<think>" in line or "</think>" in line:
            raise RecipeError(
                f"journey.bridges: {path}:{lineno}: a bridge sits inside the think block and "
                "cannot contain <think> or </think>; remove the tag"
            )
        bridges.append(line)
    if not bridges:
        raise RecipeError(
            f"journey.bridges: {path} holds no templates; write one reflection phrasing per "
            "line (lines starting with '#' are comments)"
        )
    return bridges


# --- the arithmetic step checker ----------------------------------------------------------

MAX_EXPR = 200  # longer "expressions" are not a hand-written step: skipped
MAX_DEPTH = 40  # nesting of parentheses and signs
MAX_EQUALS = 5_000  # '=' signs looked at per trace: hostile text stays linear and fast
_EXPR_CHARS = re.compile(r"[0-9 \t.,+\-*/x×÷·()]*")
_TOKEN = re.compile(r"\s*(?:(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)|([-+*/x×÷·()]))")
_NORMALIZE = [
    (re.compile(r"\\times|\\cdot|⋅|∗"), "×"),
    (re.compile(r"\\div"), "÷"),
    (re.compile(r"[−–]"), "-"),  # unicode minus and en dash
    (re.compile(r"\\?\$(?=\d)"), ""),  # "$12" (dollars) and "\$12": the number
]
_BOUNDARY = frozenset({"", "$", "=", ":", ";", "\n"})  # what may sit right against a step
_ARITH_WORDS = frozenset(
    {"times", "of", "by", "plus", "minus", "over", "squared", "cubed", "percent", "divided"}
)
_LIST_BREAK = re.compile(r"[.,;]\s")  # "so 3, 4 + 5 = 9" / "= 7. Then": not part of the step


class _Unparsable(Exception):
    """Internal: the text is not an arithmetic expression (never leaves this module)."""


def evaluate(expr: str) -> Fraction | None:
    """The exact value of an arithmetic expression, or None when it is not one (or divides by
    zero, or nests deeper than MAX_DEPTH). Never raises."""
    if len(expr) > MAX_EXPR:
        return None
    tokens = _tokenize(expr)
    if not tokens:
        return None
    parser = _Parser(tokens)
    try:
        value = parser.expr(0)
    except (_Unparsable, ZeroDivisionError):
        return None
    return value if parser.i == len(tokens) else None


def _tokenize(expr: str) -> list[str] | None:
    tokens, i, end = [], 0, len(expr.rstrip())
    while i < end:
        m = _TOKEN.match(expr, i)
        if not m:
            return None
        tokens.append(m.group(1) or m.group(2))
        i = m.end()
    return tokens


class _Parser:
    """expr := term (+|- term)* ; term := unary (*|/ unary)* ; unary := -unary | (expr) | n"""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        if self.i >= len(self.tokens):
            raise _Unparsable
        self.i += 1
        return self.tokens[self.i - 1]

    def expr(self, depth: int) -> Fraction:
        value = self.term(depth)
        while self.peek() in ("+", "-"):
            value = value + self.term(depth) if self.take() == "+" else value - self.term(depth)
        return value

    def term(self, depth: int) -> Fraction:
        value = self.unary(depth)
        while self.peek() in ("*", "x", "×", "·", "/", "÷"):
            op = self.take()
            value = value / self.unary(depth) if op in ("/", "÷") else value * self.unary(depth)
        return value

    def unary(self, depth: int) -> Fraction:
        if depth > MAX_DEPTH:
            raise _Unparsable
        token = self.take()
        if token == "-":
            return -self.unary(depth + 1)
        if token == "(":
            value = self.expr(depth + 1)
            if self.take() != ")":
                raise _Unparsable
            return value
        if token[0].isdigit() or token[0] == ".":
            return Fraction(token.replace(",", ""))
        raise _Unparsable


@dataclass(frozen=True)
class WrongStep:
    end: int  # offset just after the line holding the step
    step: str  # the equation as read (`\times` as ×, `$` dropped), e.g. "12 × 4 = 46"
    stated: str  # the stated result, e.g. "46"
    value: Fraction  # what the left side really is


def first_wrong_step(text: str, problem: str = "") -> WrongStep | None:
    """The first `expr = result` in `text` whose stated result is wrong, or None. Equations
    that are written in `problem` too (a claim the problem makes) are not steps."""
    given = {(e, r) for e, r, _, _ in _equations(problem)} if "=" in problem else set()
    offset = 0
    budget = MAX_EQUALS
    for line in text.splitlines(keepends=True):
        if "=" in line:
            budget -= line.count("=")
            for left, right, value, stated in _equations(line):
                if (left, right) not in given and not _agrees(value, stated, right):
                    step = f"{left} = {right}"
                    return WrongStep(offset + len(line.rstrip("\r\n")), step, right, value)
            if budget <= 0:
                return None
        offset += len(line)
    return None


def _equations(line: str) -> Iterator[tuple[str, str, Fraction, Fraction]]:
    """(left text, right text, left value, right value) of each checkable `=` in one line."""
    for pattern, repl in _NORMALIZE:
        line = pattern.sub(repl, line)
    for eq in islice(re.finditer("=", line), MAX_EQUALS):
        left = _left_side(line, eq.start())
        value = evaluate(left) if left else None
        if left is None or value is None:
            continue
        right = _right_side(line, eq.start())
        stated = evaluate(right) if right else None
        if right is not None and stated is not None:
            yield left, right, value, stated


def _left_side(line: str, pos: int) -> str | None:
    lo = max(0, pos - MAX_EXPR - 1)
    run_len = _EXPR_CHARS.match(line[lo:pos][::-1]).end()
    if run_len > MAX_EXPR:
        return None
    start = pos - run_len
    run, before = line[start:pos], line[max(0, start - 40) : start]
    pieces = _LIST_BREAK.split(run)
    if len(pieces) > 1:
        run, before = pieces[-1], ";"  # a list or sentence break: a boundary
    expr = run.strip()
    if not expr or not any(op in expr for op in "+-*/x×÷·") or expr[0] not in "0123456789.(-":
        return None  # "x = 5", a bare number, "* 3": not a computed step
    if expr[0] == "-" and before[-1:] not in _BOUNDARY:
        return None  # "\sqrt{16} - 2", "value - 2": a binary minus whose left side is text
    if not run[:1].isspace():
        return expr if before[-1:] in _BOUNDARY else None  # "2^3 + 1", "f(3+4)", "{3+4"
    word = before.split()[-1:]
    if (word and word[0].lower() in _ARITH_WORDS) or before[-1:] in set("}^_]!\\"):
        return None  # "2 times 3 + 4", "\frac{1}{2} (3 + 1)": the step starts earlier
    return expr


def _right_side(line: str, pos: int) -> str | None:
    m = _EXPR_CHARS.match(line, pos + 1, pos + 2 + MAX_EXPR)
    if m.end() - m.start() > MAX_EXPR:
        return None
    pieces = _LIST_BREAK.split(m.group(), maxsplit=1)
    run, after = pieces[0], line[m.end() : m.end() + 40]
    expr = run.strip().rstrip(".,")
    if not expr or len(pieces) > 1:  # "= 7. Then", "= 3, 4": ends at the break
        return expr or None
    if run[-1:].isspace() or run != run.rstrip(".,"):
        word = after.split()[:1]
        if word and word[0].lower().strip(".,;") in _ARITH_WORDS:
            return None  # "= 5 times 2": the right side goes on in words
        return expr
    if after[:1] in ("", "$") or after[:1].isspace():
        return expr
    return None  # "= 15%", "= 2^3", "= 4cm", "= 2\sqrt{2}": bound to what follows


def _agrees(value: Fraction, stated: Fraction, written: str) -> bool:
    """Exact, or `value` rounded or truncated to as many decimals as the statement shows."""
    if value == stated:
        return True
    decimals = max((len(n.split(".")[1]) for n in re.findall(r"\d*\.\d+", written)), default=0)
    scale = 10**decimals
    if (value * scale).denominator == 1:
        return False  # the exact value fits in the decimals shown: it should have been stated
    truncated = Fraction(int(value * scale), scale)  # int() truncates toward zero
    return stated == truncated or abs(stated - value) <= Fraction(1, 2 * scale)


# --- cutting and building ---------------------------------------------------------------

_STATEMENT = re.compile(
    r"\\(?:boxed|fbox)\s*\{|^[ \t]*####|\b(?:final answer|the answer|answer)\s*(?:is|:)",
    re.IGNORECASE | re.MULTILINE,
)


def cut_wrong_attempt(reasoning: str, problem: str, gold: str | None, mode: str) -> tuple[str, str]:
    """(the part of a wrong attempt a journey keeps, where it was cut: "first_error" | "whole").

    `whole`: the reasoning without its final-answer statement (the line holding the last
    `\\boxed{}`, `####` or "the answer is", and what follows it). `first_error`: up to and
    including the line of the first wrong arithmetic step, else `whole`. `gold` is not needed
    by the arithmetic check (a step is wrong on its own terms)."""
    text, where, _ = _cut(reasoning, problem, mode)
    return text, where


def _cut(reasoning: str, problem: str, mode: str) -> tuple[str, str, str | None]:
    """(text, where, the wrong step's stated result when cut there)."""
    if mode == "first_error":
        step = first_wrong_step(reasoning, problem)
        if step is not None:
            return reasoning[: step.end].strip(), "first_error", step.stated
    starts = [m.start() for m in _STATEMENT.finditer(reasoning)]
    if starts:
        line_start = reasoning.rfind("\n", 0, starts[-1]) + 1
        kept = reasoning[:line_start].strip()
        if kept:
            return kept, "whole", None
    return reasoning.strip(), "whole", None


def journey_id(wrong_id: str, right_id: str) -> str:
    return hashlib.sha256(f"journey\x00{wrong_id}\x00{right_id}".encode()).hexdigest()[:20]


def _final_tail(right: Record) -> str:
    """What `right` says after its think block (parse's normalized turn), e.g. `\\boxed{7}`."""
    last = right.messages[-1] if right.messages else {}
    if last.get("role") == "assistant" and "</think>" in last.get("content", ""):
        tail = last["content"].split("</think>", 1)[1].strip()
        if tail:
            return tail
    return f"The answer is \\boxed{{{right.answer}}}."


def build_journey(
    wrong: Record, right: Record, bridge: str, cut: str, *, bridge_index: int
) -> Record:
    """One journey record: `right`'s problem and prompt, an assistant completion holding the
    cut wrong attempt, the bridge (template `bridge_index`, `{wrong_answer}` filled) and the
    right reasoning, then right's final answer. Not yet verified (`verdict` is None)."""
    kept, where, stated = _cut(wrong.reasoning or "", wrong.problem, cut)
    filled = bridge.replace("{wrong_answer}", stated or wrong.answer or "that")
    completion = (
        f"<think>\n{kept}\n\n{filled}\n\n{(right.reasoning or '').strip()}\n</think>\n\n"
        f"{_final_tail(right)}"
    )
    prompt = right.messages
    if prompt and prompt[-1].get("role") == "assistant":
        prompt = prompt[:-1]  # parse appended right's own turn; the journey's replaces it
    parsed = split(completion, "required", "math")
    meta = {k: v for k, v in right.meta.items() if k not in ("think_tags", "verify_method")}
    meta["journey"] = {
        "wrong_id": wrong.id,
        "right_id": right.id,
        "wrong_answer": wrong.answer,
        "cut": where,
        "bridge": bridge_index,
    }
    return Record(
        problem_id=right.problem_id,
        source=right.source,
        problem=right.problem,
        gold=right.gold,
        kind="journey",
        pseudo_label=right.pseudo_label,
        id=journey_id(wrong.id or "", right.id or ""),
        messages=[dict(m) for m in prompt],
        completion=completion,
        teacher_model=right.teacher_model,
        temperature=right.temperature,
        top_p=right.top_p,
        prompt_tokens=right.prompt_tokens,
        completion_tokens=None,  # not generated: the sources' tokens are already counted
        finish_reason=right.finish_reason,
        generation_fingerprint=right.generation_fingerprint,
        reasoning=None if isinstance(parsed, Drop) else parsed.reasoning,
        answer=None if isinstance(parsed, Drop) else parsed.answer,
        meta=meta,
    )


# --- the stage ------------------------------------------------------------------------------


def _rank(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x00{key}".encode()).digest()[:8], "big")


_NOT_WRONG = frozenset({"no_answer", "unparsable_answer"})  # failed, but no wrong answer to show


class Journey(Stage):
    """Barrier: passes the verified records through, then adds journey records.

    Input: the verified records (they go on unchanged, in arrival order). The failed samples
    come through `observe_drop`, which the pipeline calls for every drop. Once the input is
    exhausted, each problem with a verified sample (the shortest reasoning, ties by id) and a
    wrongly answered one (the lowest hash of seed and id) yields one journey candidate with a
    bridge picked by a hash of seed and problem id. A candidate is parsed and verified again
    (`journey_unverified` or the parse reason when it fails), then at most
    `share / (1 - share) × plain rows` of them are kept (the lowest hash of seed and id) so
    journeys are at most `share` of the output; the rest drop as `journey_over_share`. Nothing
    depends on arrival order.

    Memory: one verified and one wrong record per problem are held until the input ends
    (records, not text spilled to disk: fine for the problem counts of one shard). `parse` and
    `verify` are borrowed, not owned: the pipeline's own Verify stage can be passed and is
    closed with the other stages.
    """

    name = "journey"

    def __init__(
        self, cfg: JourneyConfig, bridges: Sequence[str], parse: ParseAnswer, verify: Verify
    ) -> None:
        super().__init__()
        if not bridges:
            raise RecipeError("journey.bridges: no templates (see load_bridges)")
        self.cfg, self.bridges, self.parse, self.verify = cfg, list(bridges), parse, verify
        self._right: dict[str, Record] = {}
        self._wrong: dict[str, Record] = {}
        self._plain = 0
        self.counts: Counter = Counter()

    def observe_drop(self, record: Record, stage_name: str, drop: Drop) -> None:
        """Keep a sample the verify stage dropped for a wrong answer (one per problem)."""
        if stage_name != "verify" or record.verdict != "fail" or drop.reason in _NOT_WRONG:
            return
        if not (record.id and record.reasoning and record.answer and record.completion):
            return
        held = self._wrong.get(record.problem_id)
        if held is None or self._wrong_key(record) < self._wrong_key(held):
            self._wrong[record.problem_id] = record

    def _wrong_key(self, record: Record) -> tuple[int, str]:
        return _rank(self.cfg.seed, record.id or ""), record.id or ""

    @staticmethod
    def _right_key(record: Record) -> tuple[int, str]:
        return len(record.reasoning or ""), record.id or ""

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        for record in records:
            self._plain += 1
            if record.reasoning and record.answer and record.id:
                held = self._right.get(record.problem_id)
                if held is None or self._right_key(record) < self._right_key(held):
                    self._right[record.problem_id] = record
            yield record
        yield from self._journeys()

    def _journeys(self) -> list[Record]:
        both = sorted(set(self._right) & set(self._wrong))
        self.counts["problems_with_both"] = len(both)
        built: list[Record] = []
        for problem_id in both:
            index = _rank(self.cfg.seed, problem_id) % len(self.bridges)
            candidate = build_journey(
                self._wrong[problem_id],
                self._right[problem_id],
                self.bridges[index],
                self.cfg.cut,
                bridge_index=index,
            )
            self.counts["candidates"] += 1
            parsed = self.parse.process(candidate)
            if isinstance(parsed, Drop):
                self.counts["unparsed"] += 1
                self.drop(candidate, parsed)
                continue
            built.append(parsed)
        self._right.clear()
        self._wrong.clear()
        verified: list[Record] = []
        for i in range(0, len(built), self.verify.batch_size):
            batch = built[i : i + self.verify.batch_size]
            for record, result in zip(batch, self.verify.process_batch(batch), strict=True):
                if isinstance(result, Drop):
                    self.counts["unverified"] += 1
                    self.drop(record, Drop("journey_unverified"))
                else:
                    verified.append(result)
        return self._cap(verified)

    def _cap(self, verified: list[Record]) -> list[Record]:
        share = Fraction(str(self.cfg.share))  # exact: 0.3 is 3/10, not 0.2999…
        limit = floor(share / (1 - share) * self._plain)
        ranked = sorted(verified, key=lambda r: (_rank(self.cfg.seed, r.id or ""), r.id))
        kept = {r.id for r in ranked[:limit]}
        out = []
        for record in verified:  # problem order
            if record.id in kept:
                out.append(record)
            else:
                self.counts["over_share"] += 1
                self.drop(record, Drop("journey_over_share"))
        self.counts["built"] = len(out)
        for record in out:
            self.counts[f"cut_{record.meta['journey']['cut']}"] += 1
        return out

    def report(self) -> dict[str, Any]:
        """Counts for the manifest: problems with both kinds of sample, candidates, journeys
        built (kept), unparsed / unverified / over_share drops, cuts by kind, share achieved."""
        built = self.counts["built"]
        rows = self._plain + built
        return {
            "problems_with_both": self.counts["problems_with_both"],
            "candidates": self.counts["candidates"],
            "built": built,
            "unparsed": self.counts["unparsed"],
            "unverified": self.counts["unverified"],
            "over_share": self.counts["over_share"],
            "cut_first_error": self.counts["cut_first_error"],
            "cut_whole": self.counts["cut_whole"],
            "plain": self._plain,
            "share_achieved": round(built / rows, 4) if rows else 0.0,
        }
