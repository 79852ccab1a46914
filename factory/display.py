"""Terminal rendering with rich: funnels, stats and query results.

rich drops colours and ANSI escapes by itself when stdout is not a terminal (logs, CI).
"""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

# a terminal gets its real width; logs and pipes get a wide fixed one instead of 80 columns
console = Console(width=None if sys.stdout.isatty() else 160)


def table(title: str | None, columns: list[str], rows: list[tuple] | list[list]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    return t


def funnel_table(funnel: dict[str, int]) -> Table:
    first = funnel.get("generated") or 0
    rows = []
    for step, n in funnel.items():
        share = f"{n / first:.1%}" if first and step not in ("problems",) else ""
        rows.append((step, n, share))
    return table("funnel", ["step", "count", "of generated"], rows)


def show_stats(stats: dict[str, Any]) -> None:
    console.print(f"run {stats['run_id']} (recipe {stats['recipe']}), {stats['seconds']} s")
    console.print(funnel_table(stats["funnel"]))
    src = stats["by_source"]
    if src:
        console.print(table("acceptance by source", list(src[0]), [tuple(r.values()) for r in src]))
    drops = stats["drop_reasons"]
    if drops:
        console.print(table("drop reasons", list(drops[0]), [tuple(r.values()) for r in drops]))
    decon = stats.get("decontamination")
    if decon:
        rows = [
            (level, bench, decon[level]["hits"].get(bench, 0), items)
            for level in ("problems", "traces")
            if level in decon
            for bench, items in decon["benchmarks"].items()
        ]
        console.print(
            table(
                f"decontamination ({decon['n']}-gram overlap)",
                ["level", "benchmark", "hits", "benchmark items"],
                rows,
            )
        )
        examples = [
            e for level in ("problems", "traces") for e in decon.get(level, {}).get("examples", [])
        ]
        if examples:
            console.print(
                table(
                    "contamination examples",
                    ["id", "benchmark", "item", "matched n-gram"],
                    [(e["id"], e["benchmark"], e["item"], e["ngram"]) for e in examples],
                )
            )
    dedup = stats.get("dedup") or {}
    if dedup:
        console.print(
            table(
                "dedup",
                ["level", "rows", "exact dups", "near dups", "clusters", "largest", "LSH b x r"],
                [
                    (
                        level,
                        d["rows"],
                        d["drops"].get("duplicate_exact", 0),
                        d["drops"].get("duplicate_near", 0),
                        d["clusters"],
                        d["largest_cluster"],
                        f"{d['bands']} x {d['rows_per_band']}" if d["bands"] else "-",
                    )
                    for level, d in dedup.items()
                ],
            )
        )
    for part, report in (stats.get("selection") or {}).items():
        # rejection sampling, adaptive rounds, majority votes, journeys: flat numbers shown
        # as they are, nested ones (rounds, histograms) as compact JSON
        rows = [
            (k, v if isinstance(v, (int, float, str)) or v is None else _compact(v))
            for k, v in report.items()
        ]
        console.print(table(f"selection: {part}", ["measure", "value"], rows))
    for pair in stats.get("verifier_agreement", []):
        a, b = pair["a"], pair["b"]
        console.print(
            table(
                f"verifier agreement: {a} vs {b} — {pair['agreement']:.1%} of {pair['n']} agree "
                "on pass / not pass",
                [f"{a} \\ {b}", *sorted({k.split("/")[1] for k in pair["matrix"]})],
                _matrix(pair["matrix"]),
            )
        )
    t = stats["teacher"]
    console.print(
        table(
            "teacher and tokens",
            [
                "model",
                "prompt tokens",
                "completion tokens",
                "completion tok/s",
                "kept completion tokens",
            ],
            [
                (
                    t["model"],
                    t["prompt_tokens"],
                    t["completion_tokens"],
                    t["completion_tokens_per_s"],
                    stats["tokens_kept"]["completion"],
                )
            ],
        )
    )
    samples, cost = stats["samples"], stats["cost"]
    if samples:
        console.print(
            table(
                "samples and cost (every stored sample once, across resumes)",
                [
                    "samples",
                    "this run: requested",
                    "reused",
                    "failed",
                    "tombstones",
                    "wasted",
                    "cost $",
                    "$ per kept trace",
                    "budget $",
                ],
                [
                    (
                        samples["total"],
                        t["requested"],
                        t["reused"],
                        t["failed"],
                        samples["tombstones"],
                        samples.get("wasted_requests", 0),
                        cost.get("all_samples"),
                        cost.get("per_kept_trace"),
                        ""
                        if cost.get("budget_usd") is None
                        else f"{cost['budget_usd']}{' (reached)' if cost.get('budget_exhausted') else ''}",
                    )
                ],
            )
        )
    console.print(
        table(
            "time per stage (s, own time)",
            ["stage", "in", "out", "seconds"],
            [(s["name"], s["inputs"], s["outputs"], s["seconds"]) for s in stats["stages"]],
        )
    )


def _matrix(cells: dict[str, int]) -> list[tuple]:
    rows = sorted({k.split("/")[0] for k in cells})
    cols = sorted({k.split("/")[1] for k in cells})
    return [(r, *(cells.get(f"{r}/{c}", 0) for c in cols)) for r in rows]


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
