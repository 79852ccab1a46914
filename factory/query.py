"""DuckDB over finished runs and published folders: `connect` and `query` open the warehouse
(factory/warehouse.py: views runs, traces, rejects, problems, verdicts, clusters, contamination,
costs) over one path or several; `render` formats a result as csv or json; `records` returns
a result as dicts (stats, show and report read their tables that way).

Views read exactly the shard files listed in each manifest — never a glob inside a run, which
would pick up hidden or partial files — and DuckDB reads only the columns a query touches.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

Paths = str | Path | list[str | Path]


def connect(paths: Paths, db: Path | None = None):
    """A DuckDB connection with the warehouse views over `paths` (a run directory, a published
    folder, a glob, or a list of them); `db` makes the catalog a persistent DuckDB file."""
    from factory.warehouse import open_warehouse

    return open_warehouse(paths if isinstance(paths, list) else [paths], db)


def query(
    paths: Paths, sql: str, db: Path | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(columns, rows) of `sql` over the warehouse of `paths` (written into `db` if given)."""
    con = connect(paths, db)
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()
    finally:
        con.close()


def records(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    """The rows of `sql` on `con` as dicts keyed by column name."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def render(columns: list[str], rows: list[tuple], fmt: Literal["csv", "json"]) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=1)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()
