"""`factory report DIR... --out report.html`: one self-contained HTML page about trace quality.

The page holds its charts inline (matplotlib SVG, factory/report_charts.py) and its style in a
`<style>` block: no script, no font, no image, no link is fetched, so it opens offline, from an
e-mail attachment or a CI artifact alike. The numbers come from `report_data` (the warehouse
views and the run manifests, factory/report_data.py); this module only lays them out, in this
order: runs, funnel per stage, acceptance (source, difficulty, teacher, verifier), completion
and reasoning length of kept vs rejected samples, top drop reasons with example rows, verifier agreement,
dedup clusters, decontamination, tokens and cost per kept trace, mixes (achieved vs target).
A section with nothing to show says why instead of drawing an empty chart.

Model text in examples is escaped (`html.escape`): a trace that writes `<script>` shows it.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from factory import __version__
from factory.errors import FactoryError
from factory.report_charts import KEPT, NEUTRAL, PALETTE, REJECTED, TARGET
from factory.report_data import report_data

EXAMPLE_CHARS = 700  # of each example's completion
CLUSTER_BUCKETS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, None)]

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 880px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 36px 0 8px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 15px; margin: 20px 0 6px; }
nav ol { columns: 2; padding-left: 20px; } .muted { color: #666; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 3px 8px; text-align: left; vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
figure.chart { margin: 8px 0 16px; } figure.chart svg { width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 12.5px; margin-top: 2px; }
details { margin: 4px 0 8px; border: 1px solid #e5e5e5; border-radius: 4px; padding: 4px 10px; }
summary { cursor: pointer; } pre { white-space: pre-wrap; word-break: break-word;
  background: #f5f5f5; padding: 6px 8px; border-radius: 3px; font-size: 12.5px; margin: 4px 0; }
p.empty { color: #666; font-style: italic; } code { background: #f2f2f2; padding: 0 3px; }
"""


def build_report(paths: list[str | Path], out: Path) -> dict[str, Any]:
    """Write the report for `paths` to `out`; returns what it holds (sections, charts, time)."""
    t0 = time.perf_counter()
    data = report_data(paths)
    t1 = time.perf_counter()
    page = Page()
    sections = [
        ("runs", "Runs", _runs),
        ("funnel", "Funnel per stage", _funnels),
        ("acceptance", "Acceptance", _acceptance),
        ("lengths", "Length: kept vs rejected", _lengths),
        ("drops", "Top drop reasons", _drops),
        ("verifiers", "Verifier agreement", _agreement),
        ("dedup", "Dedup clusters", _dedup),
        ("contamination", "Decontamination", _contamination),
        ("costs", "Tokens and cost per kept trace", _costs),
        ("mix", "Mixes: achieved vs target", _mixes),
    ]
    body = []
    for anchor, title, render in sections:
        body.append(f'<section id="{anchor}"><h2>{html.escape(title)}</h2>')
        body.extend(render(page, data))
        body.append("</section>")
    _write(Path(out), _document(data, sections, body))
    return {
        "out": str(out),
        "charts": page.charts,
        "sections": [a for a, _, _ in sections],
        "seconds_queries": round(t1 - t0, 3),
        "seconds_total": round(time.perf_counter() - t0, 3),
        "bytes": out.stat().st_size,
    }


def _write(out: Path, text: str) -> None:
    """Beside the target, then renamed over it: a failed report leaves the old one whole."""
    if out.is_dir():
        raise ReportError(
            f"--out {out}: is a folder; name the HTML file to write, e.g. {out}/report.html"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        raise ReportError(f"--out {out}: cannot write it ({exc.strerror or exc})") from None


class ReportError(FactoryError):
    """The report cannot be written where it was asked to go."""


class Page:
    """Hands out unique chart names (each is the SVG's hash salt and the figure's id)."""

    def __init__(self) -> None:
        self.charts: list[str] = []

    def figure(self, name: str, draw, caption: str) -> str:
        name = f"{name}-{len(self.charts)}"
        self.charts.append(name)
        svg = draw(name)
        return (
            f'<figure class="chart" id="chart-{name}" data-chart="{name}">{svg}'
            f"<figcaption>{caption}</figcaption></figure>"
        )


def _document(data: dict[str, Any], sections, body: list[str]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    inputs = "".join(
        f"<li><code>{_e(i['path'])}</code> <span class=muted>({i['kind']})</span></li>"
        for i in data["inputs"]
    )
    toc = "".join(f'<li><a href="#{a}">{_e(t)}</a></li>' for a, t, _ in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>factory report</title><style>{CSS}</style></head>
<body><main>
<h1>factory report</h1>
<p class="muted">factory {__version__} · written {stamp} · {len(data["inputs"])} input(s)</p>
<ul>{inputs}</ul>
<nav><ol>{toc}</ol></nav>
{"".join(body)}
</main></body></html>
"""


# --- helpers --------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _n(value: Any, digits: int = 0) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    return f"{value:,}" if isinstance(value, int) else _e(value)


def _table(headers: list[str], rows: Iterable[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(
        f"<th{' class=n' if k in numeric else ''}>{_e(h)}</th>" for k, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=n' if k in numeric else ''}>{c if isinstance(c, Raw) else _n(c)}</td>"
            for k, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Raw(str):
    """Table cell HTML that is already escaped."""


def _empty(text: str) -> str:
    return f'<p class="empty">{text}</p>'


def _pct(kept: int, total: int) -> str:
    return f"{kept:,}/{total:,} ({kept / total:.0%})" if total else "—"


# --- sections -------------------------------------------------------------------------------


def _runs(page: Page, data) -> list[str]:
    rows = [
        [
            Raw(f"<code>{_e(Path(r['input']).name)}</code>"),
            r["kind"],
            r["recipe"],
            r["run_id"],
            r["teacher_model"] or r["teacher_backend"],
            r["generated"],
            r["kept"],
            r["seconds"],
            r["cost_usd"],
        ]
        for r in data["runs"]
    ]
    headers = ["input", "kind", "recipe", "run id", "teacher", "generated", "kept", "s", "cost $"]
    return [_table(headers, rows, {5, 6, 7, 8})]


def _funnels(page: Page, data) -> list[str]:
    from factory.report_charts import bars

    out = []
    for f in data["funnels"]:
        out.append(
            f"<h3><code>{_e(f['name'])}</code> <span class=muted>{_e(f.get('recipe'))}</span></h3>"
        )
        if not f["stages"]:
            out.append(
                _empty(
                    f"A published folder: {_n(f['kept'])} kept rows; its stages are in the runs it came from."
                )
            )
            continue
        stages = f["stages"]
        notes = [
            f"{s['outputs']:,}" + (f"  (−{sum(s['drops'].values()):,})" if s["drops"] else "")
            for s in stages
        ]
        out.append(
            page.figure(
                "funnel",
                lambda salt, stages=stages, notes=notes: bars(
                    salt,
                    [s["name"] for s in stages],
                    [s["outputs"] or 0 for s in stages],
                    title="rows out of each stage",
                    xlabel="rows",
                    notes=notes,
                ),
                "Rows leaving each stage in order (problems before <code>generate</code>, samples "
                "from it on; a mix's buckets: rows); in brackets, rows the stage dropped.",
            )
        )
        rows = [
            [
                s["name"],
                s["inputs"],
                s["outputs"],
                ", ".join(
                    f"{k} {v:,}" for k, v in sorted(s["drops"].items(), key=lambda kv: -kv[1])
                )
                or "—",
            ]
            for s in stages
        ]
        out.append(_table(["stage", "in", "out", "dropped"], rows, {1, 2}))
    return out


def _acceptance(page: Page, data) -> list[str]:
    from factory.report_charts import bars, stacked_bars

    out = []
    out.append(
        f"<p>Share of samples kept, each sample counted once: "
        f"{len(data['samples_from'])} input(s) generated samples; rows of mixes and published "
        "folders count only where their source run is not among the inputs.</p>"
    )
    if data["journey_rows"]:
        out.append(
            f"<p>{data['journey_rows']:,} journey rows are not counted: each is built from a "
            "wrong and a right sample, which are.</p>"
        )
    if data["kept_only_rows"]:
        out.append(
            f"<p><b>{data['kept_only_rows']:,} of these samples are kept rows of a mix or "
            "published folder whose source run is not among the inputs</b>: their rejected "
            "siblings are unknown, so they count as kept (add the source runs for the true "
            "acceptance).</p>"
        )
    for key, label in (
        ("source", "source"),
        ("difficulty", "difficulty"),
        ("teacher", "teacher model"),
    ):
        rows = data["acceptance"][key]
        if not rows:
            out.append(_empty(f"No samples to group by {label}."))
            continue
        if key == "difficulty" and all(r["group"] == "(none)" for r in rows):
            out.append(
                _empty(
                    "No difficulty recorded: set <code>source.difficulty_field</code> "
                    "(file and hub sources; procedural problems carry their generator's)."
                )
            )
            continue
        out.append(
            page.figure(
                f"acceptance-{key}",
                lambda salt, rows=rows, label=label: bars(
                    salt,
                    [r["group"] for r in rows],
                    [r["acceptance"] or 0 for r in rows],
                    title=f"acceptance by {label}",
                    xlabel="kept / samples",
                    xlim=(0, 1.3),
                    notes=[_pct(r["kept"], r["samples"]) for r in rows],
                    percent=True,
                    color=KEPT,
                ),
                f"Kept samples / samples per {label}; "
                + ("in level order." if key == "difficulty" else "largest groups first."),
            )
        )
    verdicts = data["verifiers"]
    if verdicts:
        names = list(dict.fromkeys(v["verifier"] for v in verdicts))
        kinds = list(dict.fromkeys(v["verdict"] for v in verdicts))
        count = {(v["verifier"], v["verdict"]): v["n"] for v in verdicts}
        series = {k: [count.get((n, k), 0) for n in names] for k in kinds}
        colors = {"pass": KEPT, "fail": REJECTED}
        out.append(
            page.figure(
                "acceptance-verifier",
                lambda salt: stacked_bars(
                    salt,
                    names,
                    series,
                    title="verdicts by verifier",
                    xlabel="judged rows",
                    colors=colors,
                ),
                "Each verifier's verdicts over the rows it judged (kept or dropped later).",
            )
        )
        rows = []
        for n in names:
            judged = sum(v["n"] for v in verdicts if v["verifier"] == n)
            passed = count.get((n, "pass"), 0)
            kept = sum(v["kept"] for v in verdicts if v["verifier"] == n)
            rows.append([n, judged, _pct(passed, judged), _pct(kept, judged)])
        out.append(_table(["verifier", "judged", "pass", "kept"], rows, {1}))
    else:
        out.append(_empty("No verifier verdicts in these inputs."))
    return out


LENGTHS = {  # data key → (chart name, title, x label, what its count is of)
    "lengths": (
        "lengths",
        "completion tokens per sample",
        "completion tokens (reasoning + answer), as the teacher counted them",
        "samples",
    ),
    "reasoning_lengths": (
        "reasoning",
        "reasoning tokens per sample (estimated)",
        "reasoning tokens ≈ completion tokens × reasoning characters / completion characters",
        "samples with a parsed reasoning",
    ),
}


def _lengths(page: Page, data) -> list[str]:
    from factory.report_charts import histogram

    if not data["lengths"]["n"]:
        return [_empty("No samples with a completion-token count (no teacher was asked).")]
    out = []
    for key, (name, title, xlabel, of) in LENGTHS.items():
        h = data[key]
        if not h["n"]:
            out.append(_empty(f"No {of}."))
            continue
        out.append(
            page.figure(
                name,
                lambda salt, h=h, title=title, xlabel=xlabel: histogram(
                    salt,
                    h["edges"],
                    {"kept": h["kept"], "rejected": h["rejected"]},
                    title=title,
                    xlabel=xlabel,
                    colors={"kept": KEPT, "rejected": REJECTED},
                    medians=h["median"],
                ),
                f"{h['n']:,} {of} on shared bins of {h['edges'][1] - h['edges'][0]:,} tokens up "
                "to the 99.5th percentile (longer ones are in the last bin); dashed lines: "
                "medians.",
            )
        )
    return out


def _drops(page: Page, data) -> list[str]:
    from factory.report_charts import bars

    d = data["drops"]
    if not d["top"]:
        return [_empty("Nothing was dropped (or these inputs keep no rejects: published folders).")]
    labels = [f"{r['stage']}: {r['drop_reason']}" for r in d["top"]]
    counts = [r["n"] for r in d["top"]]
    notes = [
        f"{r['n']:,} ({r['n'] / d['totals'][r['unit']]:.0%} of dropped {r['unit']})"
        for r in d["top"]
    ]
    totals = ", ".join(f"{n:,} {unit}" for unit, n in sorted(d["totals"].items()))
    out = [
        page.figure(
            "drops",
            lambda salt: bars(
                salt,
                labels,
                counts,
                title="top drop reasons",
                xlabel="dropped rows",
                notes=notes,
                color=REJECTED,
            ),
            f"Dropped in all: {totals}. The {len(labels)} most common stage: reason pairs, each "
            "with its share of the dropped problems or samples (problems are dropped before "
            "generation, samples after).",
        )
    ]
    for ex in d["examples"]:
        out.append(f"<h3>{_e(ex['stage'])}: <code>{_e(ex['drop_reason'])}</code></h3>")
        for row in ex["rows"]:
            completion = row.get("completion") or ""
            cut = completion[:EXAMPLE_CHARS] + ("…" if len(completion) > EXAMPLE_CHARS else "")
            verdicts = "; ".join(
                f"{v.get('verifier')}: {v.get('verdict')} ({v.get('reason')})"
                for v in row["verdicts"]
            )
            out.append(
                "<details><summary><code>"
                + _e(row["key"])
                + "</code> "
                + _e((row.get("problem") or "")[:120])
                + "</summary>"
                + f"<p><b>problem</b></p><pre>{_e(row.get('problem'))}</pre>"
                + (f"<p><b>completion</b></p><pre>{_e(cut)}</pre>" if completion else "")
                + f"<p><b>answer</b> {_e(row.get('answer')) or '—'} · <b>gold</b> {_e(row.get('gold')) or '—'}"
                + (f" · <b>verdicts</b> {_e(verdicts)}" if verdicts else "")
                + "</p></details>"
            )
    return out


def _agreement(page: Page, data) -> list[str]:
    from factory.report_charts import heatmap

    out = []
    pairs: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for r in data["agreement"]:
        pairs.setdefault((r["verifier_a"], r["verifier_b"]), {})[
            (r["verdict_a"], r["verdict_b"])
        ] = r["n"]
    for (a, b), cells in pairs.items():
        rows = sorted({x for x, _ in cells})
        cols = sorted({y for _, y in cells})
        matrix = [[cells.get((x, y), 0) for y in cols] for x in rows]
        agree = sum(c for (x, y), c in cells.items() if (x == "pass") == (y == "pass"))
        total = sum(cells.values())
        out.append(
            page.figure(
                "confusion",
                lambda salt, a=a, b=b, rows=rows, cols=cols, matrix=matrix: heatmap(
                    salt, rows, cols, matrix, title=f"{a} vs {b}", ylabel=a, xlabel=b
                ),
                f"Rows judged by both {_e(a)} and {_e(b)}: they agree on pass / not pass for "
                f"{_pct(agree, total)}.",
            )
        )
    if not pairs:
        out.append(
            "<p>No row was judged by two verifiers (add a second one, e.g. "
            "<code>verify.verifiers=[math,judge]</code>, or re-verify a labelled set with the "
            "<code>reverify</code> recipe), so there is no pairwise matrix. Below: what each "
            "verifier's verdict led to.</p>"
        )
    by_verifier: dict[str, dict[tuple[str, str], int]] = {}
    for r in data["outcomes"]:
        by_verifier.setdefault(r["verifier"], {})[(r["verdict"], r["outcome"])] = r["n"]
    for name, cells in by_verifier.items():
        rows = sorted({x for x, _ in cells})
        cols = sorted({y for _, y in cells}, key=lambda c: (c != "kept", c))
        matrix = [[cells.get((x, y), 0) for y in cols] for x in rows]
        out.append(
            page.figure(
                "outcome",
                lambda salt, name=name, rows=rows, cols=cols, matrix=matrix: heatmap(
                    salt,
                    rows,
                    cols,
                    matrix,
                    title=f"{name}: verdict vs outcome",
                    ylabel=f"{name} verdict",
                    xlabel="what happened to the row",
                ),
                f"Rows {_e(name)} judged as the primary verifier, by verdict and by their fate: "
                "passes dropped later were removed by dedup, selection or another filter.",
            )
        )
    if not by_verifier:
        out.append(_empty("No verifier verdicts in these inputs."))
    return out


def _bucket(size: int) -> str:
    for lo, hi in CLUSTER_BUCKETS:
        if hi is None or size <= hi:
            return str(lo) if lo == hi else (f"{lo}–{hi}" if hi else f"{lo}+")
    return str(size)


def _dedup(page: Page, data) -> list[str]:
    from factory.report_charts import grouped_bars

    out = []
    labels = [_bucket(lo) for lo, _ in CLUSTER_BUCKETS]
    levels: dict[str, dict[str, int]] = {}
    for r in data["clusters"]:
        counts = levels.setdefault(r["level"], dict.fromkeys(labels, 0))
        counts[_bucket(r["size"])] += r["clusters"]
    if levels:
        series = {
            f"{level} clusters": [c[x] for x in labels] for level, c in sorted(levels.items())
        }
        out.append(
            page.figure(
                "clusters",
                lambda salt: grouped_bars(
                    salt,
                    labels,
                    series,
                    title="dedup cluster sizes",
                    ylabel="clusters (log)",
                    colors={"traces clusters": NEUTRAL, "problems clusters": PALETTE[3]},
                    log=True,
                ),
                "Clusters by size (members, survivor included), in the runs that generated "
                "samples. Traces: every row that reached "
                "trace dedup; problems: only clusters with a duplicate (single problems carry no "
                "cluster).",
            )
        )
    else:
        out.append(
            _empty(
                "No dedup clusters: runs that generated samples record them; mixes and "
                "published folders hold survivors only."
            )
        )
    rows = []
    for d in data["dedup"]:
        for level in ("problems", "traces"):
            x = d[level]
            if x.get("rows") is not None:
                rows.append(
                    [
                        Raw(f"<code>{_e(d['name'])}</code>"),
                        level,
                        x["rows"],
                        x["clusters"],
                        x["duplicates"],
                        x["largest_cluster"],
                        x["threshold"],
                    ]
                )
    if rows:
        out.append(
            _table(
                ["run", "level", "rows", "clusters", "duplicates", "largest", "threshold"],
                rows,
                {2, 3, 4, 5},
            )
        )
    return out


def _contamination(page: Page, data) -> list[str]:
    from factory.report_charts import bars

    c = data["contamination"]
    out = []
    checked = [x for x in c["checked"] if x["recorded"]]
    if checked:
        rows = [
            [
                Raw(f"<code>{_e(x['name'])}</code>"),
                x["n"],
                ", ".join(f"{k} ({v:,})" for k, v in x["benchmarks"].items()),
            ]
            for x in checked
        ]
        out.append(_table(["run", "n-gram", "benchmarks (items)"], rows, {1}))
    if c["by_benchmark"]:
        labels = [f"{r['benchmark']} ({r['level']})" for r in c["by_benchmark"]]
        out.append(
            page.figure(
                "contamination",
                lambda salt: bars(
                    salt,
                    labels,
                    [r["rows"] for r in c["by_benchmark"]],
                    title="decontamination hits",
                    xlabel="rows dropped",
                    notes=[f"{r['rows']:,} rows, {r['items']:,} items" for r in c["by_benchmark"]],
                    color=REJECTED,
                ),
                "Rows dropped as contaminated, by benchmark and level (problems / traces), and the "
                "distinct benchmark items they matched.",
            )
        )
        rows = [
            [
                r["benchmark"],
                r["level"],
                r["item"],
                r["problem"],
                Raw(f"<code>{_e(r['ngram'])}</code>"),
            ]
            for r in c["examples"]
        ]
        out.append(_table(["benchmark", "level", "item", "problem", "matched n-gram"], rows))
    else:
        what = "these runs' benchmarks" if checked else "any benchmark (no run recorded a check)"
        out.append(_empty(f"No decontamination hits against {what}."))
    return out


def _costs(page: Page, data) -> list[str]:
    from factory.report_charts import stacked_bars

    rows = data["costs"]
    if not rows:
        return [_empty("No samples with token counts.")]
    kept = [r for r in rows if r["kept"] and (r["prompt_tokens"] or r["completion_tokens"])]
    out = []
    if kept:
        names = [r["teacher_model"] or "(unknown)" for r in kept]
        series = {
            "prompt": [r["prompt_tokens_per_kept"] or 0 for r in kept],
            "completion": [r["completion_tokens_per_kept"] or 0 for r in kept],
        }
        out.append(
            page.figure(
                "costs",
                lambda salt: stacked_bars(
                    salt,
                    names,
                    series,
                    title="tokens per kept trace",
                    xlabel="tokens",
                    colors={"prompt": TARGET, "completion": NEUTRAL},
                ),
                "All tokens spent (kept and rejected samples) divided by the kept traces, per teacher.",
            )
        )
    table = [
        [r["teacher_model"], r["samples"], r["kept"], r["prompt_tokens"], r["completion_tokens"],
         r["prompt_tokens_per_kept"], r["completion_tokens_per_kept"], r["cost_usd"], r["cost_per_kept_usd"]]
        for r in rows
    ]  # fmt: skip
    headers = [
        "teacher",
        "samples",
        "kept",
        "prompt tok",
        "completion tok",
        "prompt/kept",
        "completion/kept",
        "cost $",
        "$/kept",
    ]
    out.append(_table(headers, table, set(range(1, 9))))
    out.append(
        "<p class=muted>Cost is the runs' recorded price × tokens (<code>prices</code> in the recipe; 0 for local models).</p>"
    )
    return out


def _mixes(page: Page, data) -> list[str]:
    from factory.report_charts import grouped_bars

    if not data["mixes"]:
        return [_empty("No mix among these inputs (recipes like <code>r1-mix</code> make one).")]
    out = []
    for m in data["mixes"]:
        b = m["buckets"]
        names = [x["name"] for x in b]
        series = {
            "target": [x["target"] for x in b],
            "achieved": [x["achieved"] for x in b],
            "available": [x["available"] for x in b],
        }
        out.append(f"<h3><code>{_e(m['name'])}</code></h3>")
        out.append(
            page.figure(
                "mix",
                lambda salt, names=names, series=series, unit=m["unit"]: grouped_bars(
                    salt,
                    names,
                    series,
                    title="mix buckets",
                    ylabel=str(unit),
                    colors={"target": TARGET, "achieved": KEPT, "available": NEUTRAL},
                ),
                f"Per bucket, in {_e(m['unit'])}: the target, what the mix took, and what its "
                "inputs offered after filters. A shortfall is reported, never padded.",
            )
        )
        rows = [[x["name"], x["target"], x["achieved"], x["available"], x["shortfall"]] for x in b]
        out.append(
            _table(["bucket", "target", "achieved", "available", "shortfall"], rows, {1, 2, 3, 4})
        )
    return out
