"""`factory show`: find traces of a finished run and pretty-print them, one panel each.

A row comes from the `traces` view (kept) or the `rejects` view (dropped, with its stage and
reason); both are read through `factory.query.connect`, so a run publishing meanwhile cannot mix
two versions. A panel holds what one needs to judge a trace: the problem, the reasoning (folded
to its first and last lines unless asked in full), the final answer against gold, every
verifier's verdict, the dedup cluster, contamination evidence, journey and selection metadata.

Everything printed from the data is a rich `Text`, never markup: a model's `[b]` or `[/]` stays
as written. Not covered: the `problems` view (problems are shown as part of their traces) and
the prompt turns of `messages` (the system and user prompt are the recipe's files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from factory.errors import FactoryError
from factory.query import connect, records

# kept rows first, then the rejects; `kept` tells them apart in the output and in --where
ROWS = """
SELECT * FROM (
    SELECT *, true AS kept FROM traces
    UNION ALL BY NAME
    SELECT *, false AS kept FROM rejects
)
"""
KEPT_ROWS = "SELECT *, true AS kept FROM traces"
ORDER = " ORDER BY kept DESC, problem_id, sample_index NULLS LAST, kind, id"

# meta keys that get their own section; the rest are listed under `meta`
SECTIONED_META = {"contamination", "journey", "pass_rate", "samples", "majority"}


class TraceQueryError(FactoryError):
    """`factory show` cannot answer: an unknown id or a --where predicate DuckDB refuses."""


def find_traces(
    run_dir: Path,
    id: str | None = None,
    where: str | None = None,
    limit: int = 10,
    include_rejects: bool = True,
) -> list[dict[str, Any]]:
    """Rows of `run_dir` by `id`, or matching the SQL predicate `where` (at most `limit`),
    kept before dropped; `meta` is parsed from JSON. Neither: the first `limit` rows."""
    import duckdb

    if id is not None and where is not None:
        raise TraceQueryError("give --id or --where, not both")
    if limit < 1:
        raise TraceQueryError(f"--limit: bad value {limit} (allowed: >= 1)")
    rows_sql = ROWS if include_rejects else KEPT_ROWS
    con = connect(run_dir)
    try:
        if id is not None:
            rows = records(con, f"SELECT * FROM ({rows_sql}) WHERE id = ?{ORDER}", [id])
        else:
            # on its own line: a `-- comment` in the predicate cannot swallow ORDER and LIMIT
            predicate = f" WHERE ({where}\n)" if where else ""
            try:
                rows = records(con, f"SELECT * FROM ({rows_sql}){predicate}{ORDER} LIMIT {limit}")
            except duckdb.Error as exc:  # parse, bind or conversion errors of the predicate
                columns = [r[0] for r in con.execute(f"DESCRIBE {rows_sql}").fetchall()]
                reason = str(exc).strip().splitlines()[0]
                raise TraceQueryError(
                    f"--where {where!r}: {reason}; columns: {', '.join(columns)}"
                ) from None
        if id is not None and not rows:
            raise TraceQueryError(_unknown_id(con, rows_sql, id, run_dir))
    finally:
        con.close()
    for row in rows:
        row["meta"] = _meta(row.get("meta"))
    return rows


def _unknown_id(con, rows_sql: str, id: str, run_dir: Path) -> str:
    """The message for an id that matches nothing, with a prefix search to try."""
    starting = con.execute(
        f"SELECT count(*) FROM ({rows_sql}) WHERE starts_with(id, ?)", [id]
    ).fetchone()[0]
    prefix = id if starting else id[:6]
    hint = f" ({starting} id(s) start with it)" if starting else ""
    like = prefix.replace("'", "''")
    return (
        f"no trace or reject has id {id!r} in {run_dir}{hint}; "
        f"search by prefix: --where \"id LIKE '{like}%'\""
    )


def _meta(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {"raw": value}
    return parsed if isinstance(parsed, dict) else {"raw": parsed}


# ---- rendering ---------------------------------------------------------------------------


def status(row: dict[str, Any]) -> str:
    """`kept`, or `dropped (stage: reason)`."""
    if row.get("kept", row.get("stage") is None):
        return "kept"
    return f"dropped ({row.get('stage')}: {row.get('drop_reason')})"


def fold_lines(text: str, fold: int | None) -> tuple[str, int]:
    """The first and last `fold` lines of `text` around a marker, and how many were folded.
    `fold=None` keeps everything; fewer than two hidden lines are never folded."""
    lines = text.splitlines()
    hidden = len(lines) - 2 * fold if fold is not None else 0
    if hidden < 2:
        return text, 0
    marker = f"… {hidden} lines folded (--full shows them) …"
    return "\n".join([*lines[:fold], marker, *lines[-fold:]]), hidden


def render_trace(row: dict[str, Any], width: int = 120, fold: int | None = 8) -> RenderableType:
    """One panel for one row of `find_traces`: header, problem, reasoning (first and last
    `fold` lines; None: all), answer vs gold, verdicts, dedup, contamination, journey,
    selection and the remaining meta."""
    meta = row.get("meta") or {}
    parts: list[RenderableType] = [_header(row)]
    parts += _section("problem", Text(row.get("problem") or "(none)"))
    if row.get("reasoning") is not None:
        parts += _section("reasoning", _folded(row["reasoning"], fold))
    elif row.get("completion") is not None:  # dropped before or by parse: the raw output
        parts += _section("completion (not parsed)", _folded(row["completion"], fold))
    parts += _section("answer", _answer(row))
    verdicts = row.get("verdicts") or []
    if verdicts:
        parts += _section("verdicts", _verdicts(verdicts))
    parts += _section("dedup", Text(_dedup(row)))
    if meta.get("contamination"):
        parts += _section("contamination", _contamination(meta["contamination"]))
    if meta.get("journey"):
        parts += _section("journey", _journey(meta["journey"]))
    selection = {k: meta[k] for k in ("pass_rate", "samples") if k in meta}
    if selection:
        parts += _section("selection", _pairs(selection))
    rest = {k: v for k, v in meta.items() if k not in SECTIONED_META}
    if rest:
        parts += _section("meta", _pairs(rest))
    title = Text(f"{row.get('kind') or 'trace'} {row.get('id') or '(problem-level reject)'}")
    return Panel(
        Group(*parts),
        title=title,
        title_align="left",
        subtitle=Text(status(row)),
        subtitle_align="right",
        width=width,
    )


def _header(row: dict[str, Any]) -> Group:
    grid = Table.grid(padding=(0, 2))
    for _ in range(3):
        grid.add_column(style="bold")
        grid.add_column()
    for fields in (("id", "kind", "source"), ("problem_id", "sample_index", "teacher_model")):
        cells = [(Text(f), Text("" if row.get(f) is None else str(row[f]))) for f in fields]
        grid.add_row(*(c for pair in cells for c in pair))
    return Group(grid, Text.assemble(("status", "bold"), "      ", status(row)))


def _section(title: str, body: RenderableType) -> list[RenderableType]:
    return [Text(""), Text(title, style="bold underline"), body]


def _folded(text: str, fold: int | None) -> Text:
    shown, hidden = fold_lines(text, fold)
    out = Text(shown)
    if hidden:
        out.highlight_regex(r"… \d+ lines folded \(--full shows them\) …", "dim italic")
    return out


def _answer(row: dict[str, Any]) -> Table:
    gold = "(none)" if row.get("gold") is None else row["gold"]
    if row.get("pseudo_label"):
        majority = (row.get("meta") or {}).get("majority") or {}
        vote = f", {majority['votes']} votes, share {majority['share']}" if majority else ""
        gold = f"{gold}  (pseudo-label: samples' majority vote{vote})"
    answer = "(none)" if row.get("answer") is None else row["answer"]
    return _pairs({"final answer": answer, "gold": gold})


def _verdicts(verdicts: list[dict[str, Any]]) -> Table:
    # the first verifier is the primary: it decides `verdict` (verify.verifiers, in order)
    t = Table(box=None, padding=(0, 2), show_edge=False)
    for c in ("verifier", "verdict", "reason", ""):
        t.add_column(c)
    for i, v in enumerate(verdicts):
        t.add_row(
            Text(str(v.get("verifier"))),
            Text(str(v.get("verdict"))),
            Text(str(v.get("reason"))),
            Text("primary" if i == 0 else ""),
        )
    return t


def _dedup(row: dict[str, Any]) -> str:
    cluster = row.get("dedup_cluster")
    if cluster is None and row.get("kind") == "journey":
        return "no cluster (journey rows are built after dedup)"
    if cluster is None:
        return "no cluster (not deduplicated: dedup off, or dropped before it)"
    if cluster == row.get("id"):
        return f"cluster {cluster}: survivor"
    return f"cluster {cluster}: duplicate of {cluster} (the cluster's survivor)"


def _contamination(hit: dict[str, Any]) -> Table:
    t = Table(box=None, padding=(0, 2), show_edge=False)
    for c in ("benchmark", "item", "field", "matched n-gram"):
        t.add_column(c)
    t.add_row(*(Text(str(hit.get(k, ""))) for k in ("benchmark", "item", "field", "ngram")))
    return t


def _journey(journey: dict[str, Any]) -> Table:
    return _pairs(
        {
            "wrong attempt": f"{journey.get('wrong_id')} (answered {journey.get('wrong_answer')})",
            "right path": journey.get("right_id"),
            "cut": journey.get("cut"),
            "bridge": f"line {journey.get('bridge')} of journey.bridges",
        }
    )


def _pairs(values: dict[str, Any]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for k, v in values.items():
        shown = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)
        grid.add_row(Text(k), Text(shown))
    return grid
