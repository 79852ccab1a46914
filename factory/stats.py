"""`factory stats`: the funnel, acceptance by source, tokens and time per stage of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.query import connect
from factory.storage.rundir import current_version, read_manifest

# a sample counts as generated if the teacher answered it (tombstones are rejects at the
# generate stage and never reached parse), kept or dropped afterwards
BY_SOURCE = """
WITH generated AS (
    SELECT source, completion_tokens, 0 AS kept FROM rejects
    WHERE sample_index IS NOT NULL AND stage != 'generate'
    UNION ALL
    SELECT source, completion_tokens, 1 AS kept FROM traces
)
SELECT source,
       count(*) AS generated,
       sum(kept) AS kept,
       round(sum(kept) / count(*), 3) AS acceptance,
       sum(completion_tokens) AS completion_tokens
FROM generated GROUP BY source ORDER BY source
"""

DROPS = """
SELECT stage, drop_reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY n DESC, stage
"""


def run_stats(run_dir: Path) -> dict[str, Any]:
    base = current_version(run_dir) or Path(run_dir)  # one version for manifest and tables
    manifest = read_manifest(base)
    con = connect(base)
    try:
        by_source = _rows(con, BY_SOURCE)
        drops = _rows(con, DROPS)
    finally:
        con.close()
    return {
        "run_id": manifest["run_id"],
        "recipe": manifest["recipe_name"],
        "funnel": manifest["funnel"],
        "by_source": by_source,
        "drop_reasons": drops,
        "teacher": manifest["teacher"],
        "tokens_kept": manifest["tokens_kept"],
        "samples": manifest.get("samples", {}),
        "cost": manifest.get("cost", {}),
        "stages": manifest["stages"],
        "seconds": manifest["seconds"],
    }


def _rows(con, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
