"""The dataset card (README.md) of a published folder: YAML front matter for the Hub, then what a
reader needs to trust the data — recipes, funnels, token lengths, verifiers, decontamination,
dedup, skipped rows and the lineage back to the runs.

The front matter follows the Hub's convention for a parquet dataset without a loading script:
`configs: [{config_name: default, data_files: [{split: train, path: data/train-*.parquet}]}]`,
plus license and tags. The row count is stated in the body as `ROWS_LINE` (a YAML
`dataset_info` would also need byte sizes in `datasets`' own accounting). The first body line, `MARKER`, is how `factory publish` recognises a folder it wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

ROWS_LINE = "Rows published: {rows}"
MARKER = "<!-- written by `factory publish`: publishing again replaces this folder -->"


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
    }


def render_card(facts: CardFacts) -> str:
    import yaml

    head = yaml.safe_dump(front_matter(facts), sort_keys=False, allow_unicode=True)
    lines = [f"---\n{head}---", MARKER, "", "# Synthetic reasoning traces", ""]
    lines += [
        f"{facts.rows} rows in {facts.shards} parquet shard(s) under `data/`, from "
        f"{len(facts.runs)} factory run(s). Load with "
        '`datasets.load_dataset("<this folder or repo>", split="train")`; the `messages` '
        "column (system?/user/assistant, one `<think>…</think>` block in the assistant turn) "
        "is ready for TRL's SFTTrainer.",
        "",
        ROWS_LINE.format(rows=facts.rows),
        "",
    ]
    lines += _recipes(facts) + _funnels(facts) + _tokens(facts) + _verifiers(facts)
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


def _tokens(facts: CardFacts) -> list[str]:
    out = ["## Completion length (tokens)", ""]
    values = sorted(facts.completion_tokens)
    if not values:
        return [*out, "Not recorded (these traces carry no `completion_tokens`).", ""]
    out += ["| count | mean | p50 | p90 | max |", "|---|---|---|---|---|"]
    mean = sum(values) / len(values)
    out.append(
        f"| {len(values)} | {mean:.1f} | {_pct(values, 0.5)} | {_pct(values, 0.9)} | {values[-1]} |"
    )
    missing = facts.rows - len(values)
    if missing:
        out += ["", f"{missing} row(s) recorded no `completion_tokens`."]
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


def _pct(values: list[int], q: float) -> int:
    """Nearest-rank percentile of sorted values."""
    return values[max(0, math.ceil(q * len(values)) - 1)]


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M" if n < 1_000_000 else "1M<n<10M"
