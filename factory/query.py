"""DuckDB over a finished run directory: views `traces`, `rejects` and `problems`.

Views read exactly the shard files listed in the manifest — never a glob, which would pick up
hidden or partial files — and DuckDB reads only the columns a query touches.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

from factory.storage.rundir import current_version, read_manifest

VIEWS = {"traces": "traces", "rejects": "rejects", "problems": "problems"}


def connect(run_dir: Path):
    import duckdb

    # one version, resolved once: a run publishing meanwhile cannot mix two versions here
    base = current_version(run_dir) or Path(run_dir)
    manifest = read_manifest(base)
    con = duckdb.connect(":memory:")
    for view, table in VIEWS.items():
        paths = [str(base / f["path"]) for f in manifest["files"][table]]
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            from factory.errors import RunDirError

            raise RunDirError(f"{run_dir}: shard listed in the manifest is missing: {missing[0]}")
        listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
        con.execute(f"CREATE VIEW {view} AS SELECT * FROM read_parquet([{listed}])")
    return con


def query(run_dir: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    con = connect(run_dir)
    try:
        cur = con.execute(sql)
        columns = [d[0] for d in cur.description] if cur.description else []
        return columns, cur.fetchall()
    finally:
        con.close()


def render(columns: list[str], rows: list[tuple], fmt: Literal["csv", "json"]) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=1)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()
