"""`factory lint DATASET --model M`: pre-flight checks on data + tokenizer + chat template.

Each trap below trains a model that looks fine by its loss curve and fails at inference, so
they are checked before `factory train` spends any GPU time. The conversations are rendered
and tokenized exactly as TRL's `SFTTrainer` does with `assistant_only_loss=True`
(`tokenizer.apply_chat_template(conv, tokenize=True, return_dict=True,
return_assistant_tokens_mask=True)`; TRL trains on the tokens where `assistant_masks` is 1):

| check | severity | trap |
|---|---|---|
| `bad_roles` | error | not system?, (user, assistant)+ with string contents |
| `think_unbalanced` | error | the last turn lacks exactly one `<think>…</think>` block |
| `eos_is_pad` | error | pad == EOS (or no pad, so TRL pads with EOS): EOS masked as padding |
| `eos_missing` | error | the trained target does not end on EOS: the model never learns to stop |
| `no_generation_markers` | error | no `{% generation %}` in the template: no assistant mask |
| `empty_loss_mask` | error | a sample with no trained token (TRL refuses the whole dataset) |
| `reasoning_dropped` | error | the template deletes the think block (DeepSeek-R1-Distill's does) |
| `template_error` | error | the template raises on a sample |
| `over_max_length` | warning | samples longer than `max_length` lose their answer and EOS |

A template without `{% generation %}` markers is linted the way TRL would train it: TRL 1.16
swaps in its own training version of the templates it knows (Qwen, Llama 3, DeepSeek-R1-Distill,
…), so the report checks that version; a template TRL cannot patch is `no_generation_markers`.

Not covered: tool calls, multimodal content, packing, and templates that need keyword
arguments beyond the conversation (`enable_thinking`, tools). Findings are return values, never
exceptions; `LintError` is only raised when the tokenizer or template cannot be loaded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from factory.errors import FactoryError
from factory.publish import conversation_problem

log = logging.getLogger(__name__)

TRL_DEFAULT_MAX_LENGTH = 1024  # SFTConfig.max_length when unset: longer samples are cut
LENGTH_BUCKETS = (1024, 2048, 4096, 8192, 32768)
SHIPPED_TEMPLATE = "recipes/templates/chatml-think.jinja"
# tokens that are commonly free to pad with, in the order they are suggested
PAD_CANDIDATES = (
    "<|endoftext|>",
    "<|finetune_right_pad_id|>",
    "<pad>",
    "<|pad|>",
    "[PAD]",
    "<unk>",
)
MAX_EXAMPLES = 5
THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)
GENERATION = re.compile(r"\{%-?\s*generation\s*-?%\}")  # the regex of trl's has_generation_markers


class LintError(FactoryError):
    """The tokenizer or chat template to lint with cannot be loaded."""


@dataclass
class Finding:
    check: str
    severity: Literal["error", "warning"]
    message: str  # names the problem and the fix
    count: int = 0  # samples affected
    examples: list[str] = field(default_factory=list)  # a few sample ids (or indices)


@dataclass
class LintReport:
    samples: int
    findings: list[Finding]
    lengths: dict[str, Any]  # tokens per rendered sample, see `length_stats`
    suggested_max_length: int  # the smallest `max_length` of `suggest_max_length` that cuts none
    template: str = "given"  # "given", or "trl" when TRL's training version was linted
    # tokens of each conversation as rendered, in order (None: not rendered); not in to_dict
    token_counts: list[int | None] = field(default_factory=list, repr=False)

    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors()

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "samples": self.samples,
            "template": self.template,
            "suggested_max_length": self.suggested_max_length,
            "lengths": self.lengths,
            "findings": [asdict(f) for f in self.findings],
        }


# --- loading --------------------------------------------------------------------------------


def load_tokenizer(
    model: str | Path,
    chat_template: str | Path | None = None,
    *,
    pad_token: str | None = None,
    cache_dir: Path | None = None,
):
    """The tokenizer of a local model folder, of a model in the local Hugging Face cache, or of
    the bundled alias `smollm2-135m-instruct` (its converted folder, see teachers/gguf.py; the
    conversion runs once into `cache_dir`). `chat_template` is a template file (or template
    text) that replaces `tokenizer.chat_template`; `pad_token` replaces the pad token, e.g. the
    fix for `eos_is_pad`. Never downloads."""
    from transformers import AutoTokenizer

    from factory.teachers.gguf import BUNDLED, bundled_gguf, converted_folder

    if str(model) in BUNDLED:
        model = converted_folder(bundled_gguf(str(model)), cache_dir)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise LintError(
            f"cannot load a tokenizer from {model}: {exc}. Pass a local model folder (with "
            f"tokenizer files), a model already in the Hugging Face cache, or one of {sorted(BUNDLED)}"
        ) from None
    if chat_template is not None:
        tokenizer.chat_template = _read_template(chat_template)
    if pad_token is not None:
        if pad_token not in tokenizer.get_vocab():
            raise LintError(
                f"pad_token={pad_token!r} is not in the vocabulary of {model}; "
                f"pick one of its tokens, e.g. {_pad_candidates(tokenizer) or 'a reserved token'}"
            )
        tokenizer.pad_token = pad_token
    return tokenizer


def _read_template(template: str | Path) -> str:
    text = str(template)
    if isinstance(template, str) and ("{%" in text or "{{" in text):
        return text  # template text rather than a path
    path = Path(template)
    if not path.is_file():
        raise LintError(f"chat template {path} does not exist (e.g. {SHIPPED_TEMPLATE})")
    return path.read_text(encoding="utf-8")


# --- the checks -----------------------------------------------------------------------------


@dataclass
class _Sample:
    """One conversation rendered and tokenized as TRL would."""

    input_ids: list[int]
    mask: list[int]  # 1 where TRL trains (all 0 when the template has no markers)
    text: str  # the rendered conversation (only kept when there is no mask)


def lint_conversations(
    conversations: Sequence[list[dict[str, str]]],
    tokenizer,
    chat_template: str | None = None,
    max_length: int | None = None,
    ids: Sequence[str] | None = None,
) -> LintReport:
    """Every check on `conversations` rendered with `chat_template` (default: the tokenizer's).
    `max_length=None` means TRL's default (1024), which is what training uses when unset."""
    n = len(conversations)
    if ids is not None and len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} conversations")
    names = [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)]
    limit = max_length or TRL_DEFAULT_MAX_LENGTH
    template = chat_template if chat_template is not None else tokenizer.chat_template

    # --- tokenizer and template
    template, source, no_markers = _training_template(tokenizer, template, n)
    masked = no_markers is None
    findings = [no_markers] if no_markers else []
    findings += check_pad(tokenizer, n)

    # --- conversations: bad roles are not rendered (templates may raise on them); a think
    # problem still renders, but has no reasoning to look for
    problems: dict[str, list[int]] = {}
    for i, conv in enumerate(conversations):
        if problem := _conversation_problem(conv):
            problems.setdefault(problem, []).append(i)
    findings += check_roles(problems, names)
    bad = set(problems.get("bad_roles", []))
    unbalanced = {i for k, v in problems.items() if k != "bad_roles" for i in v}

    # --- rendered samples
    rendered: dict[int, _Sample] = {}
    failed: dict[int, str] = {}
    for i, conv in enumerate(conversations):
        if i not in bad:
            sample = _render(tokenizer, conv, template, masked)
            if isinstance(sample, str):
                failed[i] = sample
            else:
                rendered[i] = sample
    if failed:
        findings.append(_finding("template_error", failed, names, _template_error_message(failed)))
    if masked:
        findings += check_loss_mask(rendered, names)
    findings += check_eos(tokenizer, rendered, names, masked)
    with_think = {i: s for i, s in rendered.items() if i not in unbalanced}
    findings += check_reasoning(tokenizer, with_think, conversations, names, masked)
    lengths = [len(s.input_ids) for s in rendered.values()]
    suggested = suggest_max_length(lengths)
    findings += check_length(rendered, names, limit, max_length is None, suggested)
    counts = [len(rendered[i].input_ids) if i in rendered else None for i in range(n)]
    return LintReport(n, findings, length_stats(lengths, limit), suggested, source, counts)


def _conversation_problem(conv) -> str | None:
    """`publish.conversation_problem`, with its think reasons folded into `think_unbalanced`
    (kept apart as `think_unbalanced:<reason>` for the message)."""
    if not isinstance(conv, list) or not conv or not all(isinstance(m, dict) for m in conv):
        return "bad_roles"
    problem = conversation_problem(conv)
    if problem is None or problem == "bad_roles":
        return problem
    return f"think_unbalanced:{problem}"


def check_roles(problems: dict[str, list[int]], names: list[str]) -> list[Finding]:
    findings = []
    if bad := problems.get("bad_roles"):
        findings.append(
            _finding(
                "bad_roles",
                bad,
                names,
                f"{len(bad)} samples are not a training conversation: an optional system turn, then "
                "user/assistant turns alternating, ending with the assistant, every content a string. "
                "Fix: rebuild the rows with `factory publish` (it writes and checks this shape) or drop them",
            )
        )
    think = {
        k.split(":", 1)[1]: v for k, v in problems.items() if k.startswith("think_unbalanced:")
    }
    if think:
        rows = sorted(i for v in think.values() for i in v)
        reasons = ", ".join(f"{reason} {len(v)}" for reason, v in sorted(think.items()))
        findings.append(
            _finding(
                "think_unbalanced",
                rows,
                names,
                f"{len(rows)} samples' last assistant turn does not hold exactly one "
                f"<think>…</think> block ({reasons}). Fix: drop them or repair the tags (factory's "
                "parse step keeps only traces with one closed block; a direct answer gets an empty "
                "<think>\\n\\n</think>\\n\\n block)",
            )
        )
    return findings


def check_pad(tokenizer, samples: int) -> list[Finding]:
    eos, pad = tokenizer.eos_token, tokenizer.pad_token
    if eos is None:
        return [
            Finding(
                "eos_missing",
                "error",
                "the tokenizer has no eos_token, so there is no token to learn to stop on. Fix: set "
                "tokenizer.eos_token to the end-of-turn token the chat template writes after the "
                "assistant turn (ChatML: <|im_end|>)",
                samples,
            )
        ]
    if pad is not None and tokenizer.pad_token_id != tokenizer.eos_token_id:
        return []
    why = (
        f"the pad token is the EOS token {eos!r}"
        if pad is not None
        else f"the tokenizer has no pad_token, and TRL then pads with the EOS token {eos!r}"
    )
    candidates = _pad_candidates(tokenizer)
    fix = f"tokenizer.pad_token = {candidates[0]!r}" if candidates else "a reserved token"
    return [
        Finding(
            "eos_is_pad",
            "error",
            f"{why}: a collator that masks padding by token id (labels == pad_token_id → -100, as "
            "transformers' DataCollatorForLanguageModeling does) masks every EOS with it, and the "
            "model never learns to stop. Fix: set the pad token to one that is not EOS and that "
            f"the template never writes: {fix}",
            samples,
        )
    ]


def _pad_candidates(tokenizer) -> list[str]:
    vocab = tokenizer.get_vocab()
    return [t for t in PAD_CANDIDATES if t in vocab and t != tokenizer.eos_token]


def _training_template(
    tokenizer, template: str | None, samples: int
) -> tuple[str | None, str, Finding | None]:
    """(template TRL trains with, "given" or "trl", the no_generation_markers finding or None)."""
    if template and GENERATION.search(template):
        return template, "given", None
    patched = _trl_training_template(tokenizer, template) if template else None
    if patched:
        return patched, "trl", None
    finding = Finding(
        "no_generation_markers",
        "error",
        "the chat template has no {% generation %} … {% endgeneration %} markers, so "
        "return_assistant_tokens_mask gives an all-zero assistant mask and TRL cannot train on "
        "the assistant turns only (it has no training version of this template either). Fix: "
        f"train with {SHIPPED_TEMPLATE} or another template that wraps the "
        "assistant content and its end-of-turn token in {% generation %} markers",
        samples,
    )
    return template, "given", finding


def _trl_training_template(tokenizer, template: str) -> str | None:
    """TRL's training version of `template` (what SFTTrainer swaps in), or None."""
    try:
        from trl.chat_template_utils import get_training_chat_template
    except ImportError:
        return None
    saved = tokenizer.chat_template
    tokenizer.chat_template = template
    try:
        return get_training_chat_template(tokenizer)
    except ValueError:  # "not training-compatible … patching is not supported"
        return None
    finally:
        tokenizer.chat_template = saved


def _render(tokenizer, conv, template: str | None, masked: bool) -> _Sample | str:
    """The sample as TRL tokenizes it, or the template's error message."""
    from jinja2 import TemplateError

    try:
        out = tokenizer.apply_chat_template(
            conv,
            chat_template=template,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=masked,
        )
        # without a mask the rendered text is what the reasoning check reads
        text = (
            ""
            if masked
            else tokenizer.apply_chat_template(conv, chat_template=template, tokenize=False)
        )
    except (TemplateError, TypeError, ValueError, KeyError) as exc:
        return f"{type(exc).__name__}: {exc}"
    ids = list(out["input_ids"])
    mask = list(out["assistant_masks"]) if masked else [0] * len(ids)
    return _Sample(ids, mask, text)


def _template_error_message(failed: dict[int, str]) -> str:
    first = next(iter(failed.values()))
    return (
        f"the chat template raised on {len(failed)} samples (first: {first}). Fix: use a template "
        f"that renders system/user/assistant conversations, e.g. {SHIPPED_TEMPLATE}"
    )


def check_loss_mask(rendered: dict[int, _Sample], names: list[str]) -> list[Finding]:
    empty = [i for i, s in rendered.items() if not any(s.mask)]
    if not empty:
        return []
    return [
        _finding(
            "empty_loss_mask",
            empty,
            names,
            f"{len(empty)} of {len(rendered)} samples have no token inside the template's "
            "{% generation %} block, so assistant-only loss trains nothing on them (TRL refuses the "
            "whole dataset: 'at least one example has no assistant tokens'). Fix: drop samples with "
            "an empty assistant turn, and check that the template's generation block covers the "
            "assistant content and end-of-turn token for these roles",
        )
    ]


def check_eos(
    tokenizer, rendered: dict[int, _Sample], names: list[str], masked: bool
) -> list[Finding]:
    """Every trained assistant span must end on EOS (trailing whitespace aside); without a mask
    (whole-sequence training) the sequence must."""
    eos = tokenizer.eos_token_id
    if eos is None:
        return []  # reported by check_pad
    outside, absent = [], []
    for i, sample in rendered.items():
        spans = _spans(sample.mask) if masked else [(0, len(sample.input_ids))]
        for start, end in spans:
            last = _last_content(tokenizer, sample.input_ids, start, end)
            if last is not None and sample.input_ids[last] == eos:
                continue
            after = _next_content(tokenizer, sample.input_ids, end)
            if masked and after is not None and sample.input_ids[after] == eos:
                outside.append(i)  # rendered, but not trained
            else:
                absent.append(i)
            break
    token = tokenizer.eos_token
    findings = []
    if outside:
        findings.append(
            _finding(
                "eos_missing",
                outside,
                names,
                f"{len(outside)} samples render the EOS token {token!r} right after the assistant "
                "turn but outside its {% generation %} block, so assistant-only loss never trains the "
                f"model to stop. Fix: move {token!r} inside {{% generation %}} … {{% endgeneration %}} "
                f"(as {SHIPPED_TEMPLATE} does)",
            )
        )
    if absent:
        findings.append(
            _finding(
                "eos_missing",
                absent,
                names,
                f"{len(absent)} samples' trained target does not end with the EOS token {token!r} "
                "that generation stops on, so the model never learns to stop. Fix: a template that "
                f"writes {token!r} at the end of every assistant turn, inside its generation block "
                f"(e.g. {SHIPPED_TEMPLATE}), or set tokenizer.eos_token to the end-of-turn token "
                "the template writes",
            )
        )
    return findings


def _spans(mask: list[int]) -> list[tuple[int, int]]:
    spans, start = [], None
    for i, m in enumerate([*mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append((start, i))
            start = None
    return spans


def _last_content(tokenizer, ids: list[int], start: int, end: int) -> int | None:
    """The last token in ids[start:end] that is not whitespace (as TRL's stop-token check)."""
    for j in range(end - 1, start - 1, -1):
        if tokenizer.decode([ids[j]]).strip():
            return j
    return None


def _next_content(tokenizer, ids: list[int], start: int) -> int | None:
    for j in range(start, len(ids)):
        if tokenizer.decode([ids[j]]).strip():
            return j
    return None


def check_reasoning(
    tokenizer, rendered: dict[int, _Sample], conversations: Sequence, names: list[str], masked: bool
) -> list[Finding]:
    """The last turn's whole think block must be in what is trained: the masked tokens, or the
    rendered text when there is no mask. Whitespace is ignored (templates re-space the tags)."""
    dropped = []
    for i, sample in rendered.items():
        if masked and not any(sample.mask):
            continue  # reported as empty_loss_mask
        content = conversations[i][-1]["content"]
        block = _squash(THINK.search(content).group(0))
        trained = (
            tokenizer.decode([t for t, m in zip(sample.input_ids, sample.mask, strict=True) if m])
            if masked
            else sample.text
        )
        if block not in _squash(trained):
            dropped.append(i)
    if not dropped:
        return []
    return [
        _finding(
            "reasoning_dropped",
            dropped,
            names,
            f"{len(dropped)} samples lose their <think>…</think> block in the trained target: the "
            "chat template removes it (DeepSeek-R1-Distill's does content.split('</think>')[-1]; "
            "Qwen3's drops it from earlier turns), so the model is trained on answers without "
            f"reasoning. Fix: train with a template that keeps the assistant content as it is, e.g. "
            f"{SHIPPED_TEMPLATE} or TRL's training version of the model's template",
        )
    ]


def _squash(text: str) -> str:
    return "".join(text.split())


def check_length(
    rendered: dict[int, _Sample], names: list[str], limit: int, default: bool, suggested: int
) -> list[Finding]:
    over = [i for i, s in rendered.items() if len(s.input_ids) > limit]
    if not over:
        return []
    lost = [i for i in over if any(rendered[i].mask) and not any(rendered[i].mask[:limit])]
    whose = "TRL's default, as max_length is not set" if default else "as set"
    lost_text = f", {len(lost)} of them every trained token" if lost else ""
    return [
        _finding(
            "over_max_length",
            over,
            names,
            f"{len(over)} of {len(rendered)} samples ({len(over) / len(rendered):.1%}) are longer "
            f"than max_length={limit} ({whose}); TRL cuts them at the end, so they lose the end of "
            f"their answer and the EOS token{lost_text}. Fix: max_length={suggested} (cuts no "
            "sample), or drop the longest samples",
            severity="warning",
        )
    ]


# --- lengths --------------------------------------------------------------------------------


def length_stats(lengths: Sequence[int], max_length: int) -> dict[str, Any]:
    """Tokens per sample: p50/p95/max and the share of samples over `max_length` and over each
    of `LENGTH_BUCKETS` (keys are strings so the dict is JSON as it is)."""
    ordered = sorted(lengths)
    n = len(ordered)

    def share(limit: int) -> float:
        return round(sum(length > limit for length in ordered) / n, 4) if n else 0.0

    def pct(p: float) -> int:
        return ordered[min(n - 1, int(p * n))] if n else 0

    return {
        "p50": pct(0.5),
        "p95": pct(0.95),
        "max": ordered[-1] if n else 0,
        "max_length": max_length,
        "over_max_length": share(max_length),
        "over": {str(b): share(b) for b in LENGTH_BUCKETS},
    }


def suggest_max_length(lengths: Sequence[int], floor: int = 512) -> int:
    """The smallest of 512, 768, 1024, 1536, 2048, 3072, … (powers of two and the halfway
    points between them) that cuts no sample: a round number at most 1.5x the longest sample."""
    longest = max(lengths, default=0)
    value = floor
    while value < longest:
        value = value * 3 // 2 if value & (value - 1) == 0 else value * 4 // 3
    return value


def _finding(
    check: str,
    rows,
    names: list[str],
    message: str,
    severity: Literal["error", "warning"] = "error",
) -> Finding:
    rows = sorted(rows)
    return Finding(check, severity, message, len(rows), [names[i] for i in rows[:MAX_EXAMPLES]])
