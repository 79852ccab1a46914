"""The numbers behind `factory report`: every section as plain values, from the warehouse views.

`report_data(paths)` opens the warehouse over run directories and published folders (the same
inputs as `factory query`) and returns one dict per report section. Everything is an aggregate
computed by DuckDB over the small metadata columns, plus the lengths of `reasoning` and
`completion` (one pass, for the reasoning-token estimate); other text is read only for the
handful of example rows shown under the top drop reasons and the contamination hits, fetched
by id after the ids are chosen from metadata. A report over a million-trace run takes seconds
(benchmarks/bench_report.py).

A *sample* is a row the teacher answered: a kept trace, or a reject past the `generate` stage
(tombstones of failed requests are not samples; nor are journey rows, built from a wrong and a
right sample that are counted themselves). Every sample and verdict is counted once
across the inputs (`ONCE`): a mix's or a published folder's rows are samples of other runs
under the same ids, so they count only where their source run is not among the inputs, and
then as kept rows whose rejected siblings are unknown (`kept_only_rows`, said on the page).
Acceptance is kept / samples. Dedup clusters and cost are those of the runs that generated
samples. Per-stage funnels, dedup summaries, decontamination settings and mix targets come
from each run's manifest.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from factory.query import records

TOP_GROUPS = 20  # bars per acceptance chart; the rest are summed into "(other)"
TOP_DROPS = 12  # drop reasons in the chart
EXAMPLE_REASONS = 6  # reasons with example rows
EXAMPLES_PER_REASON = 2
HIST_BINS = 40
NONE = "(none)"

# the teacher counts the tokens of a whole completion; the reasoning's share of them is
# estimated by its share of the characters (null where no reasoning was parsed)
REASONING_TOKENS = """CAST(round(completion_tokens * nullif(length(reasoning), 0)
                   / nullif(length(completion), 0)) AS INTEGER)"""

# journey rows are built from a wrong and a right sample that are counted themselves
SAMPLES = """
SELECT input, id, source, teacher_model, meta, prompt_tokens, completion_tokens,
       {REASONING_TOKENS} AS reasoning_tokens, 1 AS kept
FROM traces WHERE kind IS DISTINCT FROM 'journey'
UNION ALL
SELECT input, id, source, teacher_model, meta, prompt_tokens, completion_tokens,
       {REASONING_TOKENS} AS reasoning_tokens, 0 AS kept
FROM rejects WHERE sample_index IS NOT NULL AND stage != 'generate'
    AND kind IS DISTINCT FROM 'journey'
"""

# one row per verifier per judged sample (the `verdicts` view, without journey rows)
JUDGED = """
WITH judged AS (
    SELECT input, id, 1 AS kept, CAST(NULL AS VARCHAR) AS stage, verdicts FROM traces
    WHERE kind IS DISTINCT FROM 'journey'
    UNION ALL
    SELECT input, id, 0 AS kept, stage, verdicts FROM rejects
    WHERE kind IS DISTINCT FROM 'journey'
), unnested AS (
    SELECT * EXCLUDE (verdicts), unnest(verdicts) AS v, generate_subscripts(verdicts, 1) AS k
    FROM judged
)
SELECT input, id, kept, stage, v.verifier AS verifier, v.verdict AS verdict, k = 1 AS is_primary
FROM unnested
"""

# a problem dropped before generation is one problem; after, each row is one sample
UNIT = """CASE WHEN kind = 'journey' THEN 'journeys'
          WHEN sample_index IS NULL THEN 'problems' ELSE 'samples' END"""

DROPPED = f"""
SELECT input, id, problem_id, stage, drop_reason, {UNIT} AS unit FROM rejects
"""

# Each sample once. A mix's or a published folder's rows are selections of samples (same ids)
# that their source runs hold too: all rows of the runs that generated samples, plus the rows
# of the other inputs whose ids none of those runs has (their source runs were not given), each
# id once (`order` picks which: a kept copy before a dropped one). Rows without an id (problems
# dropped before generation) are all kept.
ONCE = """
WITH all_rows AS ({rows}),
     other AS (SELECT * FROM all_rows ANTI JOIN generating USING (input))
SELECT * FROM all_rows SEMI JOIN generating USING (input)
UNION ALL
SELECT * FROM other WHERE id IS NULL
UNION ALL
SELECT * FROM (
    SELECT DISTINCT ON ({key}) * FROM other
    WHERE id IS NOT NULL AND id NOT IN (SELECT id FROM generated_ids) {extra}
    ORDER BY {key}, {order}
)
"""

# reasoning-gym problems carry their generator's difficulty settings; file/hub sources the
# column named by source.difficulty_field
DIFFICULTY = """coalesce(
    json_extract_string(meta, '$.difficulty'),
    json_extract_string(meta, '$.level'),
    regexp_replace(CAST(json_extract(meta, '$.generator_metadata.difficulty') AS VARCHAR),
                   '["{} ]', '', 'g'))"""

GROUPINGS = {  # acceptance by …: label → SQL expression over SAMPLES
    "source": "source",
    "difficulty": DIFFICULTY,
    "teacher": "teacher_model",
}


def report_data(paths: list[str | Path]) -> dict[str, Any]:
    """Every section of the report over `paths` (runs and published folders, globs allowed)."""
    import duckdb

    from factory.warehouse import create_views, expand, resolve

    inputs = [resolve(p) for p in expand(paths)]
    manifests = [i.manifest for i in inputs]  # the versions the views read
    con = duckdb.connect()
    try:
        create_views(con, inputs)
        generating = [str(i.path) for i, m in zip(inputs, manifests, strict=True) if _generated(m)]
        con.execute("CREATE TEMP TABLE generating (input VARCHAR)")
        if generating:
            con.executemany("INSERT INTO generating VALUES (?)", [[g] for g in generating])
        con.execute(
            """
            CREATE TEMP TABLE generated_ids AS
            SELECT DISTINCT id FROM (
                SELECT input, id FROM traces UNION ALL SELECT input, id FROM rejects
            ) SEMI JOIN generating USING (input)
            WHERE id IS NOT NULL AND EXISTS (SELECT 1 FROM runs ANTI JOIN generating USING (input))
            """
        )  # only needed (and only filled) when some input is a mix or a published folder
        # read once each, grouped several ways
        samples = SAMPLES.format(REASONING_TOKENS=REASONING_TOKENS)
        once = {"extra": "", "order": "kept DESC, input"}
        con.execute(f"CREATE TEMP TABLE samples AS {ONCE.format(rows=samples, key='id', **once)}")
        con.execute(
            f"CREATE TEMP TABLE judged AS {ONCE.format(rows=JUDGED, key='id, verifier', **once)}"
        )
        # a mix's drop of a row some input kept is no drop of that sample
        kept_elsewhere = "AND id NOT IN (SELECT id FROM traces WHERE id IS NOT NULL)"
        con.execute(
            "CREATE TEMP TABLE dropped AS "
            + ONCE.format(rows=DROPPED, key="id", extra=kept_elsewhere, order="input")
        )
        return {
            "inputs": [{"path": str(i.path), "kind": i.kind} for i in inputs],
            "runs": records(con, RUNS),
            "funnels": [_funnel(i, m) for i, m in zip(inputs, manifests, strict=True)],
            "acceptance": {
                k: _acceptance(con, expr, by_label=k == "difficulty")
                for k, expr in GROUPINGS.items()
            },
            "verifiers": records(con, VERIFIERS),
            "lengths": _lengths(con, "completion_tokens"),
            "reasoning_lengths": _lengths(con, "reasoning_tokens"),
            "drops": _drops(con),
            "agreement": records(con, AGREEMENT),
            "outcomes": records(con, OUTCOMES),
            "clusters": records(con, CLUSTER_SIZES),
            "dedup": [_dedup(i, m) for i, m in zip(inputs, manifests, strict=True) if m],
            "contamination": {
                "by_benchmark": records(con, CONTAMINATION_BY_BENCHMARK),
                "examples": records(con, CONTAMINATION_EXAMPLES),
                "checked": [_decontamination(i, m) for i, m in zip(inputs, manifests, strict=True)],
            },
            "costs": records(con, COSTS),
            "samples_from": generating,
            "journey_rows": con.execute(
                "SELECT count(DISTINCT id) FROM traces WHERE kind = 'journey'"
            ).fetchone()[0],
            "kept_only_rows": con.execute(
                "SELECT count(*) FROM samples ANTI JOIN generating USING (input) WHERE kept = 1"
            ).fetchone()[0],
            "mixes": [
                _mix(i, m) for i, m in zip(inputs, manifests, strict=True) if m and m.get("mix")
            ],
        }
    finally:
        con.close()


def _generated(manifest: dict[str, Any] | None) -> bool:
    return bool(manifest) and not manifest.get("mix")


RUNS = """
SELECT input, kind, run_id, recipe, teacher_backend, teacher_model, generated, kept,
       seconds, cost_usd, finished_at
FROM runs ORDER BY input, run_id
"""


def _funnel(i, manifest: dict[str, Any] | None) -> dict[str, Any]:
    """One run's stages in order: rows in, rows out, drops by reason (published: rows only)."""
    name = Path(i.path).name
    if manifest is None:
        rows = sum(r.get("rows_traces") or 0 for r in i.runs)
        return {"input": str(i.path), "name": name, "kind": i.kind, "stages": [], "kept": rows}
    stages = [
        {
            "name": s["name"],
            "inputs": s.get("inputs"),
            "outputs": s.get("outputs"),
            "drops": s.get("drops") or {},
        }
        for s in manifest.get("stages") or []
    ]
    return {
        "input": str(i.path),
        "name": name,
        "kind": i.kind,
        "recipe": manifest.get("recipe_name"),
        "run_id": manifest.get("run_id"),
        "stages": stages,
        "funnel": manifest.get("funnel") or {},
        "kept": (manifest.get("rows") or {}).get("traces"),
    }


def _acceptance(con, expr: str, by_label: bool = False) -> list[dict[str, Any]]:
    """Samples and kept per group, largest groups first (`by_label`: in label order)."""
    rows = records(
        con,
        f"""
        SELECT coalesce(CAST({expr} AS VARCHAR), '{NONE}') AS "group", count(*) AS samples,
               sum(kept) AS kept
        FROM samples GROUP BY 1 ORDER BY samples DESC, "group"
        """,
    )
    if len(rows) > TOP_GROUPS:  # the long tail as one bar
        rest = rows[TOP_GROUPS - 1 :]
        rows = [
            *rows[: TOP_GROUPS - 1],
            {
                "group": f"(other {len(rest)})",
                "samples": sum(r["samples"] for r in rest),
                "kept": sum(r["kept"] for r in rest),
            },
        ]
    for r in rows:
        r["kept"] = int(r["kept"] or 0)
        r["acceptance"] = r["kept"] / r["samples"] if r["samples"] else None
    if by_label:  # levels read in their own order: 1, 2, … 10, then (none) and (other)
        rows.sort(key=lambda r: (r["group"].startswith("("), _natural(r["group"])))
    return rows


def _natural(label: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", label)]


VERIFIERS = """
SELECT verifier, verdict, count(*) AS n, count(*) FILTER (WHERE kept) AS kept
FROM judged GROUP BY ALL ORDER BY verifier, n DESC
"""

# every pair of verifiers that judged the same rows: their verdicts side by side
AGREEMENT = """
SELECT a.verifier AS verifier_a, b.verifier AS verifier_b, a.verdict AS verdict_a,
       b.verdict AS verdict_b, count(*) AS n
FROM judged AS a JOIN judged AS b
  ON a.input = b.input AND a.id = b.id AND a.verifier < b.verifier
GROUP BY ALL ORDER BY ALL
"""


def _lengths(con, column: str) -> dict[str, Any]:
    """Histograms of `column` for kept and rejected samples on shared bins (to the 99.5th
    percentile; longer samples fall in the last bin), with medians."""
    hi, n = con.execute(
        f"SELECT quantile_disc({column}, 0.995), count({column}) FROM samples"
    ).fetchone()
    if not n:
        return {"edges": [], "kept": [], "rejected": [], "median": {}, "n": 0}
    width = max(1, -(-int(hi or 1) // HIST_BINS))
    counts = con.execute(
        f"""
        SELECT kept, least(CAST({column} // {width} AS INTEGER), {HIST_BINS - 1}) AS bin,
               count(*) AS n
        FROM samples WHERE {column} IS NOT NULL GROUP BY ALL
        """
    ).fetchall()
    series = {1: [0] * HIST_BINS, 0: [0] * HIST_BINS}
    for kept, b, count in counts:
        series[kept][b] = count
    medians = dict(
        con.execute(f"SELECT kept, median({column}) FROM samples GROUP BY kept").fetchall()
    )
    return {
        "edges": [b * width for b in range(HIST_BINS + 1)],
        "kept": series[1],
        "rejected": series[0],
        "median": {"kept": medians.get(1), "rejected": medians.get(0)},
        "n": n,
    }


def _drops(con) -> dict[str, Any]:
    top = records(
        con,
        f"""
        SELECT stage, drop_reason, unit, count(*) AS n FROM dropped
        GROUP BY ALL ORDER BY n DESC, stage, drop_reason LIMIT {TOP_DROPS}
        """,
    )
    totals = dict(con.execute("SELECT unit, count(*) FROM dropped GROUP BY ALL").fetchall())
    total = sum(totals.values())
    shown = top[:EXAMPLE_REASONS]
    if not shown:
        return {"top": [], "total": total, "totals": totals, "examples": []}
    # choose the example rows from metadata, then read the text of just those rows
    pairs = " OR ".join("(stage = ? AND drop_reason = ?)" for _ in shown)
    params = [x for r in shown for x in (r["stage"], r["drop_reason"])]
    picked = records(
        con,
        f"""
        SELECT stage, drop_reason, input, coalesce(id, problem_id) AS key FROM (
            SELECT stage, drop_reason, input, id, problem_id,
                   row_number() OVER (PARTITION BY stage, drop_reason
                                      ORDER BY coalesce(id, problem_id)) AS k
            FROM dropped WHERE {pairs}
        ) WHERE k <= {EXAMPLES_PER_REASON}
        """,
        params,
    )
    keys = sorted({r["key"] for r in picked})
    marks = ", ".join("?" for _ in keys)
    text = records(
        con,
        f"""
        SELECT input, coalesce(id, problem_id) AS key, problem, answer, gold, completion,
               to_json(verdicts) AS verdicts
        FROM rejects WHERE coalesce(id, problem_id) IN ({marks})
        """,
        keys,
    )
    by_key = {(t["input"], t["key"]): t for t in text}
    examples = []
    for r in shown:
        rows = [
            {**by_key[(p["input"], p["key"])], "stage": r["stage"], "drop_reason": r["drop_reason"]}
            for p in picked
            if (p["stage"], p["drop_reason"]) == (r["stage"], r["drop_reason"])
            and (p["input"], p["key"]) in by_key
        ]
        for row in rows:
            row["verdicts"] = json.loads(row["verdicts"]) if row["verdicts"] else []
        examples.append({"stage": r["stage"], "drop_reason": r["drop_reason"], "rows": rows})
    return {"top": top, "total": total, "totals": totals, "examples": examples}


# the primary verifier's verdict against what happened to the row
OUTCOMES = """
SELECT verifier, verdict, CASE WHEN kept THEN 'kept' ELSE 'dropped at ' || stage END AS outcome,
       count(*) AS n
FROM judged WHERE is_primary GROUP BY ALL ORDER BY verifier, verdict, outcome
"""

# clusters of the runs that ran dedup (a mix or published folder holds survivors only)
CLUSTER_SIZES = """
SELECT level, size, count(*) AS clusters, sum(size) AS rows FROM (
    SELECT DISTINCT input, run_id, level, cluster, size
    FROM clusters SEMI JOIN generating USING (input)
) GROUP BY ALL ORDER BY level, size
"""


def _dedup(i, manifest: dict[str, Any]) -> dict[str, Any]:
    out = {"input": str(i.path), "name": Path(i.path).name}
    for level in ("problems", "traces"):
        d = (manifest.get("dedup") or {}).get(level) or {}
        out[level] = {
            k: d.get(k) for k in ("rows", "clusters", "duplicates", "largest_cluster", "threshold")
        }
    return out


CONTAMINATION_BY_BENCHMARK = """
SELECT benchmark, level, count(*) AS rows, count(DISTINCT item) AS items
FROM contamination GROUP BY ALL ORDER BY rows DESC, benchmark, level
"""

CONTAMINATION_EXAMPLES = """
SELECT benchmark, level, item, ngram, problem_id, left(problem, 400) AS problem
FROM contamination ORDER BY benchmark, level, problem_id LIMIT 8
"""


def _decontamination(i, manifest: dict[str, Any] | None) -> dict[str, Any]:
    d = (manifest or {}).get("decontamination") or {}
    return {
        "input": str(i.path),
        "name": Path(i.path).name,
        "n": d.get("n"),
        "benchmarks": d.get("benchmarks") or {},
        "recorded": bool(d),
    }


# tokens from the samples (each once); cost as the runs that generated them recorded it
COSTS = """
WITH tokens AS (
    SELECT teacher_model, count(*) AS samples, sum(prompt_tokens) AS prompt_tokens,
           sum(completion_tokens) AS completion_tokens, sum(kept) AS kept,
           sum(kept) FILTER (WHERE input IN (SELECT input FROM generating)) AS kept_costed
    FROM samples GROUP BY teacher_model
), cost AS (
    SELECT teacher_model, sum(cost_usd) AS cost_usd
    FROM costs SEMI JOIN generating USING (input) GROUP BY teacher_model
)
SELECT teacher_model, samples, CAST(prompt_tokens AS BIGINT) AS prompt_tokens,
       CAST(completion_tokens AS BIGINT) AS completion_tokens, CAST(kept AS BIGINT) AS kept,
       cost_usd, prompt_tokens / nullif(kept, 0) AS prompt_tokens_per_kept,
       completion_tokens / nullif(kept, 0) AS completion_tokens_per_kept,
       cost_usd / nullif(kept_costed, 0) AS cost_per_kept_usd  -- of the runs that cost it
FROM tokens LEFT JOIN cost USING (teacher_model) ORDER BY teacher_model
"""


def _mix(i, manifest: dict[str, Any]) -> dict[str, Any]:
    mix = manifest["mix"]
    return {
        "input": str(i.path),
        "name": Path(i.path).name,
        "unit": mix.get("unit"),
        "buckets": [
            {k: b.get(k) for k in ("name", "target", "achieved", "available", "shortfall")}
            for b in mix.get("buckets") or []
        ],
    }
