"""DuckDB over many finished runs and published folders at once: one set of stable views.

`open_warehouse(paths)` takes run directories and folders written by `factory publish` (paths or
globs, expanded here) and returns a DuckDB connection with these views (schemas: README,
section "Warehouse"):

    runs           one row per run (a published folder: per run in its card's lineage)
    traces         kept rows, plus `input` (the folder they were read from)
    rejects        dropped rows with `stage` and `drop_reason`, plus `input`
    problems       every loaded problem, plus `run_id` and `input`
    verdicts       one row per verifier per judged row (kept or rejected)
    clusters       dedup clusters: survivor and duplicates, with the cluster size
    contamination  rows dropped as `contaminated:<benchmark>`, with the evidence from `meta`
    costs          per run and teacher model: samples, tokens, kept, cost (manifest), cost/kept

Each input is resolved once: a run directory is read at its current version, from exactly the
shard files its manifest lists (never a glob inside a run, which would pick up hidden or
partial files); a published folder from its `data/train-*.parquet` (the only files it holds),
with `raw_completion` read back as `completion`. Anything else is refused, naming the path and
what was expected. With several inputs each view is a UNION ALL BY NAME of the inputs, so a
column one factory version lacks reads as null.

`db=FILE` writes the views into a persistent DuckDB file (absolute paths) for other tools:
`duckdb FILE -c "SELECT * FROM traces"`. The catalog points at the versions it was made from:
after a run publishes a new version (whose old files are removed), make it again.

Not covered: run directories of an older layout whose manifest lists no files.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from factory.errors import RunDirError
from factory.storage.rundir import MARKER as RUN_MARKER
from factory.storage.rundir import current_version, read_manifest

VIEWS = (
    "runs",
    "traces",
    "rejects",
    "problems",
    "verdicts",
    "clusters",
    "contamination",
    "costs",
)
RENAMED = {"raw_completion": "completion"}  # published name → run name (factory.publish)
PROBLEM_COLUMNS = "problem_id, source, problem, gold, meta"
FUNNEL_STEPS = ("problems", "generated", "parsed", "verified", "deduped", "kept")


class WarehouseError(RunDirError):
    """A path is neither a finished run directory nor a published folder, or a shard its
    manifest lists is missing."""


@dataclass(slots=True)
class Input:
    """One run directory or published folder, resolved once."""

    path: Path  # absolute
    kind: Literal["run", "published"]
    files: dict[str, list[str]]  # traces / rejects / problems → absolute shard paths
    runs: list[dict[str, Any]]  # its rows of the `runs` view
    renamed: dict[str, str] = field(default_factory=dict)  # stored column → view column
    columns: set[str] = field(default_factory=set)  # stored columns of its traces
    manifest: dict[str, Any] | None = None  # a run's manifest, as read once here


def open_warehouse(paths: list[str | Path], db: Path | None = None):
    """A DuckDB connection with the warehouse views over `paths` (persistent in `db`)."""
    import duckdb

    inputs = [resolve(p) for p in expand(paths)]
    target = str(Path(db).absolute()) if db is not None else ":memory:"
    try:
        con = duckdb.connect(target)
    except duckdb.Error as exc:
        raise WarehouseError(f"--db {db}: cannot open it as a DuckDB file ({exc})") from None
    try:
        create_views(con, inputs)
    except BaseException:
        con.close()
        raise
    return con


# --- inputs ---------------------------------------------------------------------------------


def expand(paths: list[str | Path]) -> list[Path]:
    """Paths as given, globs expanded (sorted); each folder once, in first-named order."""
    if not paths:
        raise WarehouseError("name at least one run directory or published folder (or a glob)")
    out: list[Path] = []
    for p in paths:
        matches = sorted(glob.glob(str(p))) if glob.has_magic(str(p)) else [str(p)]
        if not matches:
            raise WarehouseError(f"{p}: no path matches this glob")
        for folder in (Path(m).resolve() for m in matches):
            if folder not in out:  # named twice (a glob and a path): read once
                out.append(folder)
    return out


def resolve(path: Path) -> Input:
    path = Path(path).absolute()
    if not path.is_dir():
        what = "not a folder" if path.exists() else "no such folder"
        raise WarehouseError(f"{path}: {what} (expected a run directory or a published folder)")
    if current_version(path) is not None or (path / "manifest.json").is_file():
        return _run(path)
    card = path / "README.md"
    if card.is_file():
        from factory.card import MARKER as CARD_MARKER

        text = card.read_text(encoding="utf-8", errors="replace")
        if CARD_MARKER in text:
            return _published(path, text)
    if (path / RUN_MARKER).exists():
        raise WarehouseError(
            f"{path} holds no finished run yet (one is running or stopped; no manifest.json): "
            "finish it by rerunning its `factory run` command"
        )
    raise WarehouseError(
        f"{path}: not a finished factory run directory (no manifest.json) nor a folder written "
        "by `factory publish` (README.md + data/train-*.parquet)"
    )


def _run(path: Path) -> Input:
    import pyarrow.parquet as pq

    base = current_version(path) or path  # one version for the manifest and its shards
    manifest = read_manifest(base)
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        raise WarehouseError(f"{base}/manifest.json lists no files (an older run layout)")
    files = {
        table: [str((base / f["path"]).resolve()) for f in listed.get(table) or []]
        for table in ("traces", "rejects", "problems")
    }
    for shards in files.values():
        if missing := [f for f in shards if not Path(f).is_file()]:
            raise WarehouseError(f"{path}: shard listed in the manifest is missing: {missing[0]}")
    columns = set(pq.read_schema(files["traces"][0]).names) if files["traces"] else set()
    return Input(path, "run", files, [_run_row(path, manifest)], columns=columns, manifest=manifest)


def _published(path: Path, card: str) -> Input:
    import pyarrow.parquet as pq

    shards = sorted(str(p.resolve()) for p in (path / "data").glob("train-*.parquet"))
    if not shards:
        raise WarehouseError(f"{path}/data holds no train-*.parquet shards")
    footers = [pq.ParquetFile(s).metadata for s in shards]
    columns = set(footers[0].schema.to_arrow_schema().names)
    renamed = {k: v for k, v in RENAMED.items() if k in columns}
    rows = sum(f.num_rows for f in footers)
    files = {"traces": shards, "rejects": [], "problems": []}
    return Input(path, "published", files, _published_rows(path, card, rows), renamed, columns)


# --- the runs view: one row per run, from its manifest (or a published card's lineage) -------

RUN_COLUMNS = {
    "input": "VARCHAR",
    "kind": "VARCHAR",
    "run_id": "VARCHAR",
    "recipe": "VARCHAR",
    "recipe_fingerprint": "VARCHAR",
    "generation_fingerprint": "VARCHAR",
    "factory_version": "VARCHAR",
    "teacher_backend": "VARCHAR",
    "teacher_model": "VARCHAR",
    "started_at": "TIMESTAMP",
    "finished_at": "TIMESTAMP",
    "seconds": "DOUBLE",
    **{step: "BIGINT" for step in FUNNEL_STEPS},
    "funnel": "MAP(VARCHAR, BIGINT)",
    "rows_traces": "BIGINT",
    "rows_rejects": "BIGINT",
    "rows_problems": "BIGINT",
    "samples": "BIGINT",
    "prompt_tokens": "BIGINT",
    "completion_tokens": "BIGINT",
    "cost_usd": "DOUBLE",
    "cost_this_run_usd": "DOUBLE",
    "cost_per_kept_usd": "DOUBLE",
    "budget_usd": "DOUBLE",
}


def _run_row(path: Path, m: dict[str, Any]) -> dict[str, Any]:
    teacher, funnel = m.get("teacher") or {}, m.get("funnel") or {}
    samples, cost, rows = m.get("samples") or {}, m.get("cost") or {}, m.get("rows") or {}
    return {
        "input": str(path),
        "kind": "run",
        "run_id": m.get("run_id"),
        "recipe": m.get("recipe_name"),
        "recipe_fingerprint": m.get("recipe_fingerprint"),
        "generation_fingerprint": m.get("generation_fingerprint"),
        "factory_version": m.get("factory_version"),
        "teacher_backend": teacher.get("backend"),
        "teacher_model": teacher.get("model"),
        "started_at": _utc(m.get("started_at")),
        "finished_at": _utc(m.get("finished_at")),
        "seconds": m.get("seconds"),
        **{step: funnel.get(step) for step in FUNNEL_STEPS},
        "funnel": funnel,
        "rows_traces": rows.get("traces"),
        "rows_rejects": rows.get("rejects"),
        "rows_problems": rows.get("problems"),
        "samples": samples.get("total"),
        "prompt_tokens": samples.get("prompt_tokens"),
        "completion_tokens": samples.get("completion_tokens"),
        "cost_usd": cost.get("all_samples"),
        "cost_this_run_usd": cost.get("this_run"),
        "cost_per_kept_usd": cost.get("per_kept_trace"),
        "budget_usd": cost.get("budget_usd"),
    }


def _published_rows(path: Path, card: str, rows: int) -> list[dict[str, Any]]:
    """A published folder's runs, from its card's lineage block (what a card records)."""
    from factory.card import read_lineage

    lineage = read_lineage(card)
    runs = lineage.get("runs") or [{"rows": rows}]
    models = lineage.get("teacher_models") or []
    blank = dict.fromkeys(RUN_COLUMNS)
    return [
        {
            **blank,
            "input": str(path),
            "kind": "published",
            "run_id": r.get("run_id"),
            "recipe": r.get("recipe"),
            "recipe_fingerprint": r.get("recipe_fingerprint"),
            "generation_fingerprint": r.get("generation_fingerprint"),
            "factory_version": r.get("factory_version") or lineage.get("factory_version"),
            "teacher_model": models[0] if len(models) == 1 else None,
            "kept": r.get("rows"),
            "rows_traces": r.get("rows"),
        }
        for r in runs
    ]


def _utc(stamp: str | None) -> str | None:
    if not stamp:
        return None
    moment = datetime.fromisoformat(stamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ")


def _literal(value: Any, sql_type: str) -> str:
    if value is None:
        text = "NULL"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)
    elif isinstance(value, dict):
        items = ", ".join(f"{_q(str(k))}: {_literal(v, 'BIGINT')}" for k, v in value.items())
        text = f"MAP {{{items}}}"
    else:
        text = _q(str(value))
    return f"CAST({text} AS {sql_type})"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


# --- views ----------------------------------------------------------------------------------


def _scan(i: Input, table: str) -> str:
    """SELECT of one input's table, with `input` (and `run_id` where it is not a column)."""
    listed = ", ".join(_q(f) for f in i.files[table])
    rename = ", ".join(f"{a} AS {b}" for a, b in i.renamed.items())
    star = f"* RENAME ({rename})" if rename else "*"
    extra = f", {_q(str(i.path))} AS input"
    run_ids = {r["run_id"] for r in i.runs}
    if (table == "problems" or "run_id" not in i.columns) and len(run_ids) == 1:
        extra = f", {_literal(run_ids.pop(), 'VARCHAR')} AS run_id" + extra
    return f"SELECT {star}{extra} FROM read_parquet([{listed}], union_by_name = true)"


def _union(parts: list[str]) -> str:
    return "\nUNION ALL BY NAME\n".join(parts)


def create_views(con, inputs: list[Input]) -> None:
    traces = [_scan(i, "traces") for i in inputs if i.files["traces"]]
    if not traces:
        raise WarehouseError("no input lists a traces shard")
    rejects = [_scan(i, "rejects") for i in inputs if i.files["rejects"]]
    problems = [_scan(i, "problems") for i in inputs if i.files["problems"]]
    # only published folders: no rejects or problems, but views with their columns all the same
    no_stage = "CAST(NULL AS VARCHAR) AS stage, CAST(NULL AS VARCHAR) AS drop_reason"
    empty_rejects = f"SELECT * EXCLUDE (input), {no_stage}, input FROM ({traces[0]}) WHERE false"
    empty_problems = f"SELECT {PROBLEM_COLUMNS}, run_id, input FROM ({traces[0]}) WHERE false"
    names = list(RUN_COLUMNS)
    values = ",\n".join(
        "(" + ", ".join(_literal(r[c], RUN_COLUMNS[c]) for c in names) + ")"
        for i in inputs
        for r in i.runs
    )
    views = {
        "runs": f"SELECT * FROM (VALUES {values}) AS runs({', '.join(names)})",
        "traces": _union(traces),
        "rejects": _union(rejects) if rejects else empty_rejects,
        "problems": _union(problems) if problems else empty_problems,
        "verdicts": VERDICTS,
        "clusters": CLUSTERS,
        "contamination": CONTAMINATION,
        "costs": COSTS,
    }
    for name in VIEWS:
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {views[name]}")


# one row per verifier per judged row; the first verifier of a recipe is the primary, whose
# verdict is also the row's `verdict`
VERDICTS = """
WITH judged AS (
    SELECT input, run_id, id, problem_id, source, teacher_model, true AS kept,
           CAST(NULL AS VARCHAR) AS stage, CAST(NULL AS VARCHAR) AS drop_reason, verdicts
    FROM traces
    UNION ALL BY NAME
    SELECT input, run_id, id, problem_id, source, teacher_model, false AS kept,
           stage, drop_reason, verdicts
    FROM rejects
), unnested AS (
    SELECT * EXCLUDE (verdicts), unnest(verdicts) AS v, generate_subscripts(verdicts, 1) AS position
    FROM judged
)
SELECT input, run_id, id, problem_id, source, teacher_model, kept, stage, drop_reason,
       v.verifier AS verifier, v.verdict AS verdict, v.reason AS reason,
       CAST(position AS INTEGER) AS position, position = 1 AS is_primary
FROM unnested
"""

# trace level: every row that went through trace dedup (kept survivors, survivors dropped by a
# later stage, and the duplicates); problem level: the duplicates and the problems they
# duplicate (problems carry no cluster column, so single problems are not listed)
CLUSTERS = """
WITH members AS (
    SELECT input, run_id, 'traces' AS level, dedup_cluster AS cluster, id AS member,
           problem_id, source, true AS kept, 'survivor' AS outcome
    FROM traces WHERE dedup_cluster = id
    UNION ALL
    SELECT input, run_id, 'traces', dedup_cluster, id, problem_id, source, false,
           CASE WHEN dedup_cluster = id THEN 'survivor' ELSE drop_reason END
    FROM rejects
    WHERE dedup_cluster = id
       OR (stage LIKE 'dedup_traces%' AND drop_reason LIKE 'duplicate_%')
    UNION ALL
    SELECT input, run_id, 'problems', dedup_cluster, problem_id, problem_id, source,
           CAST(NULL AS BOOLEAN), drop_reason
    FROM rejects
    WHERE stage LIKE 'dedup_problems%' AND drop_reason LIKE 'duplicate_%'
    UNION ALL
    SELECT DISTINCT input, run_id, 'problems', dedup_cluster, dedup_cluster, dedup_cluster,
           source, CAST(NULL AS BOOLEAN), 'survivor'
    FROM rejects
    WHERE stage LIKE 'dedup_problems%' AND drop_reason LIKE 'duplicate_%'
)
SELECT input, run_id, level, cluster, member, member = cluster AS is_survivor, outcome, kept,
       problem_id, source,
       count(*) OVER (PARTITION BY input, run_id, level, cluster) AS size
FROM members
"""

CONTAMINATION = """
SELECT input, run_id, id, problem_id, source,
       replace(stage, 'decontaminate_', '') AS level,
       coalesce(json_extract_string(meta, '$.contamination.benchmark'),
                substr(drop_reason, length('contaminated:') + 1)) AS benchmark,
       json_extract_string(meta, '$.contamination.item') AS item,
       json_extract_string(meta, '$.contamination.ngram') AS ngram,
       json_extract_string(meta, '$.contamination.field') AS field,
       problem, drop_reason
FROM rejects WHERE drop_reason LIKE 'contaminated:%'
"""

# a sample is a row the teacher answered (tombstones are rejects at `generate`; problem-level
# rejects have no sample); the manifest's cost is per run, split by samples when a run holds
# several teacher models (a mix, which records no cost: null)
COSTS = """
WITH samples AS (
    SELECT input, run_id, teacher_model, prompt_tokens, completion_tokens, 1 AS kept
    FROM traces
    UNION ALL
    SELECT input, run_id, teacher_model, prompt_tokens, completion_tokens, 0 AS kept
    FROM rejects WHERE sample_index IS NOT NULL AND stage != 'generate'
), per_teacher AS (
    SELECT input, run_id, teacher_model, count(*) AS samples,
           sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
           sum(kept) AS kept
    FROM samples GROUP BY input, run_id, teacher_model
), costed AS (
    SELECT p.*, r.cost_usd * p.samples / sum(p.samples) OVER (PARTITION BY p.input, p.run_id)
           AS cost_usd
    FROM per_teacher AS p LEFT JOIN runs AS r USING (input, run_id)
)
SELECT input, run_id, teacher_model, samples, CAST(prompt_tokens AS BIGINT) AS prompt_tokens,
       CAST(completion_tokens AS BIGINT) AS completion_tokens, CAST(kept AS BIGINT) AS kept,
       cost_usd, cost_usd / nullif(kept, 0) AS cost_per_kept_usd
FROM costed
"""
