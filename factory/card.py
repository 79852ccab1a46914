"""The dataset card (README.md) of a published folder: YAML front matter for the Hub, then what a
reader needs to trust the data — recipes, funnels, rows per kind, mixture and selection reports,
token lengths with a length audit, verifiers, decontamination, dedup, skipped rows and the
lineage back to the runs.

The front matter follows the Hub's convention for a parquet dataset without a loading script:
`configs: [{config_name: default, data_files: [{split: train, path: data/train-*.parquet}]}]`,
plus license and tags, and `length_audit` (share of rows over common `max_length` values). The
row count is stated in the body as `ROWS_LINE` (a YAML `dataset_info` would also need byte sizes
in `datasets`' own accounting), the rows per kind as the "Kinds" table (`stated_kinds` reads it
back for `check_published`). The first body line, `MARKER`, is how `factory publish` recognises
a folder it wrote.

The length audit measures the assistant turn (the teacher's `completion_tokens`, or the
tokenizer-free estimate of filters/length.py where a run recorded none); the prompt turns and
the chat template come on top, so its shares are a floor on what a trainer truncates.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

ROWS_LINE = "Rows published: {rows}"
MARKER = "<!-- written by `factory publish`: publishing again replaces this folder -->"
MAX_LENGTHS = (1024, 2048, 4096, 8192, 32768)  # common SFT context lengths
TRL_DEFAULT_MAX_LENGTH = 1024  # trl.SFTConfig.max_length (TRL 1.x): longer rows are truncated
_KIND_ROW = re.compile(r"^\| (\S+) \| (\d+) \| (\d+) \|$", re.MULTILINE)


@dataclass(slots=True)
class RunSummary:
    """What the card says about one source run (read from its manifest and `run_stats`)."""

    run_dir: str
    manifest: dict[str, Any]
    rows_in: int  # kept traces in the run
    rows_published: int
    verifier_agreement: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class CardFacts:
    rows: int
    shards: int
    runs: list[RunSummary]
    skipped: dict[str, int]  # reason -> rows not published
    completion_tokens: list[int]  # of published rows that recorded it
    assistant_tokens: list[int]  # every published row: recorded, else estimated
    kinds: dict[str, int]  # kind -> published rows
    pseudo_labelled: dict[str, int]  # kind -> rows whose gold is a majority vote
    verdicts: dict[str, int]  # final verdict -> rows
    per_verifier: dict[str, dict[str, int]]  # verifier -> verdict -> rows
    teacher_models: list[str]
    factory_version: str
    license: str = "other"


def front_matter(facts: CardFacts) -> dict[str, Any]:
    recipes = sorted({r.manifest.get("recipe_name") or "?" for r in facts.runs})
    return {
        "license": facts.license,
        "task_categories": ["text-generation"],
        "tags": ["synthetic", "reasoning", "factory", *recipes],
        "size_categories": [_size_category(facts.rows)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
            }
        ],
        "length_audit": {
            "tokens": "assistant turn",
            "estimated_rows": facts.rows - len(facts.completion_tokens),
            "share_over_max_length": {
                limit: round(over / facts.rows, 6) if facts.rows else 0.0
                for limit, over in length_audit(facts.assistant_tokens).items()
            },
        },
    }


def length_audit(tokens: list[int]) -> dict[int, int]:
    """Rows longer than each of `MAX_LENGTHS` (E4 of RELIABILITY.md)."""
    return {limit: sum(t > limit for t in tokens) for limit in MAX_LENGTHS}


def stated_kinds(body: str) -> dict[str, tuple[int, int]]:
    """kind -> (rows, pseudo-labelled) as the card's "Kinds" table states them."""
    section = body.split("\n## Kinds\n", 1)[-1].split("\n## ", 1)[0] if "## Kinds" in body else ""
    return {m[1]: (int(m[2]), int(m[3])) for m in _KIND_ROW.finditer(section)}


def read_lineage(card: str) -> dict[str, Any]:
    """The card's lineage block (written by `_lineage`) as a dict; {} if it has none."""
    import yaml

    match = re.search(r"^## Lineage\n\n```yaml\n(.*?)```", card, re.DOTALL | re.MULTILINE)
    if not match:
        return {}
    try:
        return yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return {}


def render_card(facts: CardFacts) -> str:
    import yaml

    head = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True)
    lines = [f"---\n{head}---", MARKER, "", "# Synthetic reasoning traces", ""]
    lines += [
        f"{facts.rows} rows in {facts.shards} parquet shard(s) under `data/`, from "
        f"{len(facts.runs)} factory run(s). Load with "
        '`datasets.load_dataset("<this folder or repo>", split="train")`; the `messages` '
        "column (system?/user/assistant, one `<think>…</think>` block in the assistant turn) "
        "is ready for TRL's SFTTrainer; for assistant-only loss give it a chat template with "
        "`{% generation %}` markers around the assistant turn (factory ships "
        "`recipes/templates/chatml-think.jinja`). The teacher's raw output is in "
        "`raw_completion`.",
        "",
        ROWS_LINE.format(rows=facts.rows),
        "",
    ]
    lines += _recipes(facts) + _funnels(facts) + _kinds(facts) + _mix(facts) + _selection(facts)
    lines += _tokens(facts) + _verifiers(facts)
    lines += _decontamination(facts) + _dedup(facts) + _skipped(facts) + _lineage(facts)
    return "\n".join(lines).rstrip() + "\n"


def _recipes(facts: CardFacts) -> list[str]:
    out = ["## Recipes", "", "| run | recipe | recipe fingerprint | generation fingerprint |"]
    out.append("|---|---|---|---|")
    for r in facts.runs:
        m = r.manifest
        out.append(
            f"| {m.get('run_id')} | {m.get('recipe_name')} | `{m.get('recipe_fingerprint')}` "
            f"| `{m.get('generation_fingerprint')}` |"
        )
    return [*out, ""]


def _funnels(facts: CardFacts) -> list[str]:
    out = ["## Funnel per run", ""]
    for r in facts.runs:
        funnel = r.manifest.get("funnel") or {}
        steps = " → ".join(f"{k} {v}" for k, v in funnel.items())
        out.append(
            f"- `{r.manifest.get('run_id')}`: {steps}; published {r.rows_published} "
            f"of {r.rows_in} kept"
        )
    return [*out, ""]


def _kinds(facts: CardFacts) -> list[str]:
    out = ["## Kinds", "", "| kind | rows | pseudo-labelled |", "|---|---|---|"]
    for kind, rows in sorted(facts.kinds.items()):
        out.append(f"| {kind} | {rows} | {facts.pseudo_labelled.get(kind, 0)} |")
    out += [
        "",
        "`reasoning`: a chain-of-thought trace; `knowledge`: a direct answer (empty think block); "
        "`journey`: a wrong attempt, its detection and the correction. Pseudo-labelled rows were "
        "verified against the samples' majority vote, not a gold answer of the source.",
    ]
    return [*out, ""]


def _mix(facts: CardFacts) -> list[str]:
    mixed = [r for r in facts.runs if r.manifest.get("mix")]
    if not mixed:
        return []
    out = ["## Mix", ""]
    for r in mixed:
        mix = r.manifest["mix"]
        unit = mix.get("unit", "?")
        cap = mix.get("max_tokens")
        out += [
            f"`{r.manifest.get('run_id')}`: targets in {unit}, seed {mix.get('seed')}, "
            + (f"rows over {cap} tokens left out" if cap is not None else "no max_tokens"),
            "",
            f"| bucket | target ({unit}) | achieved | available | shortfall | inputs |",
            "|---|---|---|---|---|---|",
        ]
        for b in mix.get("buckets") or []:
            inputs = ", ".join(_mix_input(i) for i in b.get("inputs") or [])
            out.append(
                f"| {_cell(b.get('name'))} | {b.get('target')} | {b.get('achieved')} "
                f"| {b.get('available')} | {b.get('shortfall')} | {inputs} |"
            )
        out.append("")
    return out


def _mix_input(spec: Any) -> str:
    """factory/mix.py reports an input as {input, path, taken, ...}: `label (taken rows)`."""
    if isinstance(spec, dict) and "input" in spec:
        taken = f" ({spec['taken']} taken)" if "taken" in spec else ""
        return _cell(spec["input"]) + taken
    return _cell(spec)


def _selection(facts: CardFacts) -> list[str]:
    selected = [r for r in facts.runs if r.manifest.get("selection")]
    if not selected:
        return []
    out = ["## Selection", ""]
    for r in selected:
        out += [f"`{r.manifest.get('run_id')}`:", "", "| step | key | value |", "|---|---|---|"]
        report = r.manifest["selection"]
        for step, value in report.items() if isinstance(report, dict) else [("", report)]:
            items = value.items() if isinstance(value, dict) else [("", value)]
            out += [f"| {_cell(step)} | {_cell(k)} | {_cell(v)} |" for k, v in items]
        out.append("")
    return out


def _tokens(facts: CardFacts) -> list[str]:
    out = ["## Completion length (tokens)", ""]
    values = sorted(facts.completion_tokens)
    if not values:
        out += ["Not recorded (these traces carry no `completion_tokens`).", ""]
    else:
        out += ["| count | mean | p50 | p90 | max |", "|---|---|---|---|---|"]
        mean = sum(values) / len(values)
        out.append(
            f"| {len(values)} | {mean:.1f} | {_pct(values, 0.5)} | {_pct(values, 0.9)} "
            f"| {values[-1]} |"
        )
        missing = facts.rows - len(values)
        if missing:
            out += ["", f"{missing} row(s) recorded no `completion_tokens`."]
        out.append("")
    return out + _length_audit(facts)


def _length_audit(facts: CardFacts) -> list[str]:
    estimated = facts.rows - len(facts.completion_tokens)
    how = "the teacher's `completion_tokens` where recorded, else a tokenizer-free estimate: "
    how += f"{estimated} of {facts.rows} row(s) estimated"
    out = [
        "### Length audit: rows over common `max_length` values",
        "",
        f"Tokens of the assistant turn ({how}); the prompt turns and the chat template add to "
        "each row, so these shares are a floor on what a trainer truncates. TRL's "
        f"`SFTConfig.max_length` defaults to {TRL_DEFAULT_MAX_LENGTH}: set it above the rows "
        "you mean to keep whole.",
        "",
        "| max_length | rows over | share |",
        "|---|---|---|",
    ]
    for limit, over in length_audit(facts.assistant_tokens).items():
        share = 100 * over / facts.rows if facts.rows else 0.0
        note = " (TRL default)" if limit == TRL_DEFAULT_MAX_LENGTH else ""
        out.append(f"| {limit}{note} | {over} | {share:.2f}% |")
    return [*out, ""]


def _verifiers(facts: CardFacts) -> list[str]:
    out = ["## Verification", ""]
    verdicts = ", ".join(f"{k}: {v}" for k, v in sorted(facts.verdicts.items()))
    out.append(f"Final verdicts of published rows: {verdicts or 'none'}.")
    for name, counts in sorted(facts.per_verifier.items()):
        out.append(f"- verifier `{name}`: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    pairs = [(r, p) for r in facts.runs for p in r.verifier_agreement]
    if pairs:
        out += ["", "Verifier agreement (pass vs not pass, over each run's verified traces):", ""]
        for r, p in pairs:
            matrix = ", ".join(f"{k} {v}" for k, v in p["matrix"].items())
            out.append(
                f"- `{r.manifest.get('run_id')}`: {p['a']} vs {p['b']}: agreement "
                f"{p['agreement']} over {p['n']} ({matrix})"
            )
    return [*out, ""]


def _decontamination(facts: CardFacts) -> list[str]:
    out = ["## Decontamination", ""]
    for r in facts.runs:
        d = r.manifest.get("decontamination")
        if not d:
            out.append(f"- `{r.manifest.get('run_id')}`: not run")
            continue
        benches = ", ".join(f"{k} ({v})" for k, v in (d.get("benchmarks") or {}).items())
        hits = {
            stage: sum((d.get(stage) or {}).get("hits", {}).values())
            for stage in ("problems", "traces")
        }
        out.append(
            f"- `{r.manifest.get('run_id')}`: {d.get('n')}-gram overlap against {benches}; "
            f"dropped {hits['problems']} problem(s) and {hits['traces']} trace(s)"
        )
    return [*out, ""]


def _dedup(facts: CardFacts) -> list[str]:
    out = ["## Deduplication", ""]
    for r in facts.runs:
        d = (r.manifest.get("dedup") or {}).get("traces")
        if not d:
            out.append(f"- `{r.manifest.get('run_id')}`: no trace dedup")
            continue
        drops = ", ".join(f"{k} {v}" for k, v in (d.get("drops") or {}).items()) or "none"
        out.append(
            f"- `{r.manifest.get('run_id')}`: MinHash threshold {d.get('threshold')} over "
            f"{d.get('rows')} traces; {d.get('clusters')} clusters (largest "
            f"{d.get('largest_cluster')}); dropped: {drops}"
        )
    return [*out, ""]


def _skipped(facts: CardFacts) -> list[str]:
    total = sum(facts.skipped.values())
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(facts.skipped.items()))
    text = f"skipped: {total}" + (f" ({reasons})" if reasons else "")
    return [
        "## Rows not published",
        "",
        f"Kept traces that cannot be a valid SFT conversation are left out: {text}.",
        "",
    ]


def _lineage(facts: CardFacts) -> list[str]:
    import yaml

    lineage = {
        "factory_version": facts.factory_version,
        "teacher_models": facts.teacher_models,
        "runs": [
            {
                "run_id": r.manifest.get("run_id"),
                "run_dir": r.run_dir,
                "recipe": r.manifest.get("recipe_name"),
                "recipe_fingerprint": r.manifest.get("recipe_fingerprint"),
                "generation_fingerprint": r.manifest.get("generation_fingerprint"),
                "factory_version": r.manifest.get("factory_version"),
                "rows": r.rows_published,
            }
            for r in facts.runs
        ],
    }
    body = yaml.safe_dump(lineage, sort_keys=False, allow_unicode=True)
    return ["## Lineage", "", "```yaml", body.rstrip(), "```", ""]


def _cell(value: Any, limit: int = 160) -> str:
    """One markdown table cell: scalars as they are, the rest as compact JSON, cut at `limit`."""
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    else:
        text = "null" if value is None else str(value)
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pct(values: list[int], q: float) -> int:
    """Nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(q * len(values)) - 1)]


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M"
