"""`factory stats`: the funnel, acceptance by source, tokens and time per stage of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.query import connect, records
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

# every pair of verifiers that judged the same traces: their verdicts side by side
AGREEMENT = """
WITH judged AS (  -- one key per row: ids of re-verified inputs need not be unique
    SELECT row_number() OVER () AS k, verdicts FROM (
        SELECT verdicts FROM traces
        UNION ALL
        SELECT verdicts FROM rejects WHERE len(verdicts) > 1
    )
), v AS (
    SELECT k, unnest(verdicts, recursive := true) FROM judged
)
SELECT a.verifier AS verifier_a, b.verifier AS verifier_b,
       a.verdict AS verdict_a, b.verdict AS verdict_b, count(*) AS n
FROM v AS a JOIN v AS b ON a.k = b.k AND a.verifier < b.verifier
GROUP BY ALL ORDER BY verifier_a, verifier_b, verdict_a, verdict_b
"""

DROPS = """
SELECT stage, drop_reason, count(*) AS n FROM rejects GROUP BY ALL ORDER BY n DESC, stage
"""


def run_stats(run_dir: Path) -> dict[str, Any]:
    base = current_version(run_dir) or Path(run_dir)  # one version for manifest and tables
    manifest = read_manifest(base)
    con = connect(base)
    try:
        by_source = records(con, BY_SOURCE)
        drops = records(con, DROPS)
        columns = {r[0] for r in con.execute("DESCRIBE traces").fetchall()}
        agreement = records(con, AGREEMENT) if "verdicts" in columns else []  # older runs: none
    finally:
        con.close()
    return {
        "run_id": manifest["run_id"],
        "recipe": manifest["recipe_name"],
        "recipe_fingerprint": manifest.get("recipe_fingerprint"),
        "resolved_recipe": manifest.get("recipe") or {},  # every setting, as the run used it
        "funnel": manifest["funnel"],
        "by_source": by_source,
        "drop_reasons": drops,
        "verifier_agreement": _agreement(agreement),
        "teacher": manifest["teacher"],
        "tokens_kept": manifest["tokens_kept"],
        "samples": manifest.get("samples", {}),
        "cost": manifest.get("cost", {}),
        "decontamination": manifest.get("decontamination"),
        "dedup": manifest.get("dedup") or {},
        "selection": manifest.get("selection") or {},
        "stages": manifest["stages"],
        "seconds": manifest["seconds"],
    }


def _agreement(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pair of verifiers: the confusion matrix and the share of traces where they agree on
    pass vs not-pass."""
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        pair = pairs.setdefault(
            (r["verifier_a"], r["verifier_b"]),
            {"a": r["verifier_a"], "b": r["verifier_b"], "matrix": {}, "n": 0, "agree": 0},
        )
        pair["matrix"][f"{r['verdict_a']}/{r['verdict_b']}"] = r["n"]
        pair["n"] += r["n"]
        pair["agree"] += r["n"] if (r["verdict_a"] == "pass") == (r["verdict_b"] == "pass") else 0
    for pair in pairs.values():
        pair["agreement"] = round(pair["agree"] / pair["n"], 4) if pair["n"] else None
    return list(pairs.values())
