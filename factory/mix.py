"""`factory run recipe=r1-mix`: finished runs and published datasets → one mixed run directory.

A mix recipe (`factory/mix_recipe.py`) names buckets, each with inputs, an optional `where`
predicate and a target in samples or completion tokens (or a weight of `mix.total`). Per
bucket, in the order the recipe lists them:

1. read the kept traces of every input: a finished run directory (its current version, the
   shards its manifest lists) or a folder written by `factory publish` (`data/train-*.parquet`);
2. keep the rows matching `where` (DuckDB SQL over the input columns);
3. drop rows longer than `mix.max_tokens` completion tokens (the row's `completion_tokens`,
   else an estimate from the text, `filters.length.approx_tokens`): rejects `too_long`;
4. keep one copy of each row (a row is its `id`, `problem_id` and `completion`: the same
   sample read from a run and from a published folder of it is one row), and drop rows an
   earlier bucket took;
5. order what is left by md5(seed, row) — deterministic for the seed, independent of the
   order of inputs or files — and take rows until the target: exactly `target` rows
   (samples), or up to and including the row that reaches it (tokens: within one sample).

A target larger than what is available is reported as a shortfall in the manifest's `mix`
block and the printed report; rows are never repeated to pad it. The output is an ordinary
run directory (`factory stats`, `query`, `publish` work on it): `data/` holds the mix in
md5 order (a seeded shuffle across buckets), every row with its original columns except the
run constants (`recipe`, `recipe_fingerprint`, `run_id` are the mix's) and with
`meta.mix = {bucket, input, source_run_id, source_recipe, source_recipe_fingerprint}`;
`rejects/` holds the `too_long` rows; `problems/` is empty (a mix loads no problems).
Inputs must all have the kept-trace columns of this factory version; otherwise the error
names the missing, extra or differently typed columns.

The manifest's `recipe_fingerprint` hashes the mix settings and the identity of every input
(run ids and shard hashes), so rerunning with the same recipe over the same inputs does
nothing, and a changed input makes a new version.

Not covered: nested mix recipes as `{recipe: ...}` inputs (use `{path: runs/<mix dir>}`);
redistributing one bucket's shortfall to others; up-sampling (by design); sampling by prompt
tokens; inputs that publish a new version while the mix reads them (the old version's files
are removed under it: rerun).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import factory
from factory.card import MARKER as CARD_MARKER
from factory.errors import FactoryError
from factory.mix_recipe import Bucket, MixInput, MixRecipe
from factory.storage.rundir import MARKER as RUN_MARKER
from factory.storage.rundir import RunDir, current_version, read_manifest

log = logging.getLogger(__name__)

TOKENS = (
    "CASE WHEN completion_tokens IS NULL THEN approx_tokens(coalesce(completion, '')) "
    "ELSE completion_tokens END"
)
ROW_KEY = (
    "md5(concat_ws(chr(0), coalesce(id, ''), coalesce(problem_id, ''), coalesce(completion, '')))"
)
BATCH_ROWS = 10_000


class MixError(FactoryError):
    """A mix cannot be made: an input is missing or unfinished, schemas differ, a `where`
    predicate does not run."""


@dataclass(slots=True)
class Source:
    """One input, resolved once: its folder, shards and identity."""

    label: str  # as the recipe names it: recipe=math-cot / path=runs/x
    path: Path  # the run directory or published folder
    kind: Literal["run", "published"]
    files: list[str]  # absolute shard paths (also the locator DuckDB reports back)
    rows: int
    identity: dict[str, Any]  # what the output depends on: run id, fingerprints, shard hashes
    run_ids: list[str] = field(default_factory=list)
    recipe_name: str | None = None
    recipe_fingerprint: str | None = None
    renamed: dict[str, str] = field(default_factory=dict)  # stored column → row column

    def schema(self, file: str):
        """A shard's schema under the row column names (published folders rename some)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        stored = pq.read_schema(file).remove_metadata()
        return pa.schema([f.with_name(self.renamed.get(f.name, f.name)) for f in stored])

    def summary(self) -> dict[str, Any]:
        return {
            "input": self.label,
            "kind": self.kind,
            "path": str(self.path),
            "recipe_name": self.recipe_name,
            "recipe_fingerprint": self.recipe_fingerprint,
            "run_ids": self.run_ids,
            "rows": self.rows,
        }


# --- resolving inputs ---------------------------------------------------------------------


def resolve_input(spec: MixInput, bucket: str, cwd: Path) -> Source:
    if spec.recipe is None:
        return _read_folder(cwd / str(spec.path), spec.label(), bucket)
    from factory.errors import RecipeError
    from factory.pipeline import default_out
    from factory.recipe import load_recipe

    command = "factory run " + " ".join([f"recipe={spec.recipe}", *spec.overrides])
    try:
        recipe = load_recipe(spec.recipe, spec.overrides)
    except RecipeError as exc:
        raise MixError(f"mix.buckets.{bucket}: input {spec.label()}: {exc}") from None
    path = cwd / default_out(recipe)
    if current_version(path) is None and not (path / "manifest.json").is_file():
        raise MixError(
            f"mix.buckets.{bucket}: input {spec.label()} has no finished run at {path}; "
            f"run it first (from {cwd}): {command}"
        )
    source = _read_folder(path, spec.label(), bucket)
    if source.recipe_fingerprint != recipe.fingerprint():
        raise MixError(
            f"mix.buckets.{bucket}: input {spec.label()}: the run at {path} was made with "
            f"other settings (recipe fingerprint {source.recipe_fingerprint}, the recipe now "
            f"gives {recipe.fingerprint()}); run it again (from {cwd}): {command}"
        )
    return source


def _read_folder(path: Path, label: str, bucket: str) -> Source:
    where = f"mix.buckets.{bucket}: input {label}"
    if not path.is_dir():
        raise MixError(f"{where}: no such folder {path}")
    if current_version(path) is not None or (path / "manifest.json").is_file():
        return _read_run(path, label)
    card = path / "README.md"
    if card.is_file() and CARD_MARKER in card.read_text(encoding="utf-8", errors="replace"):
        return _read_published(path, label, where)
    if (path / RUN_MARKER).exists():
        raise MixError(
            f"{where}: {path} holds no finished run yet (one is running or stopped): "
            "finish it by rerunning its `factory run` command"
        )
    raise MixError(
        f"{where}: {path} is neither a finished factory run directory (manifest.json) nor a "
        "folder written by `factory publish` (README.md + data/train-*.parquet)"
    )


def _read_run(path: Path, label: str) -> Source:
    base = current_version(path) or path  # one version for the manifest and its shards
    manifest = read_manifest(base)
    listed = (manifest.get("files") or {}).get("traces")
    if listed is None:  # an older layout: every shard in data/
        files = sorted(str((base / "data" / p.name).resolve()) for p in (base / "data").glob("*"))
        hashes = [_sha256(Path(f)) for f in files]
    else:
        files = [str((base / f["path"]).resolve()) for f in listed]
        hashes = [f.get("sha256") or _sha256(Path(p)) for f, p in zip(listed, files, strict=True)]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise MixError(
            f"input {label}: shard listed in {base}/manifest.json is missing: {missing[0]}"
        )
    return Source(
        label=label,
        path=path,
        kind="run",
        files=files,
        rows=_count_rows(files),
        identity={"run_id": manifest.get("run_id"), "shards": hashes},
        run_ids=[manifest.get("run_id")],
        recipe_name=manifest.get("recipe_name"),
        recipe_fingerprint=manifest.get("recipe_fingerprint"),
    )


def _read_published(path: Path, label: str, where: str) -> Source:
    files = sorted(str(p.resolve()) for p in (path / "data").glob("train-*.parquet"))
    if not files:
        raise MixError(f"{where}: {path}/data holds no train-*.parquet shards")
    import pyarrow.parquet as pq

    from factory import publish

    # `factory publish` renames some columns for TRL (completion → raw_completion): back
    names = set(pq.read_schema(files[0]).names)
    renamed = {out: row for row, out in getattr(publish, "RENAMED", {}).items() if out in names}
    return Source(
        label=label,
        path=path,
        kind="published",
        files=files,
        rows=_count_rows(files),
        identity={"shards": [_sha256(Path(f)) for f in files]},
        renamed=renamed,
    )


def _count_rows(files: list[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def _sha256(path: Path) -> str:
    from factory.storage.shards import sha256_file

    return sha256_file(path)


def check_schemas(sources: list[Source]) -> None:
    """Every input has the same columns as the first, and those are this factory version's
    kept-trace columns (the output is written with them)."""
    from factory.record import arrow_schema

    first = sources[0]
    ref = first.schema(first.files[0])
    for source in sources:
        for file in source.files:
            mine = source.schema(file)
            if problems := _schema_problems(mine, ref):
                raise MixError(
                    f"input {source.label} ({source.path}) cannot be mixed with input "
                    f"{first.label} ({first.path}): {'; '.join(problems)}. Mix runs of one "
                    "factory version (rerun the older one with `factory run`)"
                )
    if problems := _schema_problems(ref, arrow_schema()):
        raise MixError(
            f"the inputs' columns are not this factory version's kept-trace columns: "
            f"{'; '.join(problems)}. Rerun them with this version (`factory run`)"
        )


def _schema_problems(mine, ref) -> list[str]:
    if mine.equals(ref):
        return []
    a, b = {f.name: f.type for f in mine}, {f.name: f.type for f in ref}
    problems = []
    if missing := [c for c in b if c not in a]:
        problems.append(f"missing columns {missing}")
    if extra := [c for c in a if c not in b]:
        problems.append(f"extra columns {extra}")
    if typed := [f"{c} ({a[c]} vs {b[c]})" for c in b if c in a and a[c] != b[c]]:
        problems.append(f"different types: {', '.join(typed)}")
    return problems or [f"column order differs ({list(a)} vs {list(b)})"]


# --- selection ------------------------------------------------------------------------------


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _scan(source: Source) -> str:
    """The source's rows under the row column names, with their locators (filename and
    file_row_number, DuckDB's)."""
    files = ", ".join(_lit(f) for f in source.files)
    scan = f"read_parquet([{files}], filename=true, file_row_number=true)"
    if not source.renamed:
        return scan
    names = ", ".join(f'"{a}" AS "{b}"' for a, b in source.renamed.items())
    return f"(SELECT * RENAME ({names}) FROM {scan})"


def _columns(source: Source) -> list[str]:
    return source.schema(source.files[0]).names


def select_bucket(
    con, bucket: Bucket, sources: list[Source], target: int, recipe: MixRecipe
) -> dict[str, Any]:
    """Pick this bucket's rows into the `picked` table; returns its report."""
    import duckdb

    cfg = recipe.mix
    t0 = time.time()
    union = " UNION ALL ".join(
        f"SELECT filename AS __file, file_row_number AS __row, {_lit(s.label)} AS __input, "
        f"{TOKENS} AS __tokens, {ROW_KEY} AS __key FROM {_scan(s)}"
        + (f" WHERE ({bucket.where})" if bucket.where else "")
        for s in sources
    )
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE cand AS {union}")
    except duckdb.Error as exc:
        first_line = str(exc).splitlines()[0]
        if bucket.where is None:
            raise MixError(
                f"mix.buckets.{bucket.name}: cannot read its inputs: {first_line}"
            ) from None
        raise MixError(
            f"mix.buckets.{bucket.name}.where: {bucket.where!r} does not run over the input "
            f"rows: {first_line} (columns: {', '.join(_columns(sources[0]))})"
        ) from None

    def count(sql: str) -> int:
        return int(con.execute(sql).fetchone()[0] or 0)

    read = sum(s.rows for s in sources)
    matched = count("SELECT count(*) FROM cand")
    too_long = 0
    if cfg.max_tokens is not None:
        too_long = count(f"SELECT count(*) FROM cand WHERE __tokens > {cfg.max_tokens}")
        con.execute(
            f"INSERT INTO rejected SELECT *, {_lit(bucket.name)} FROM cand "
            f"WHERE __tokens > {cfg.max_tokens} AND __key NOT IN (SELECT __key FROM rejected) "
            "QUALIFY row_number() OVER (PARTITION BY __key ORDER BY __input, __file, __row) = 1"
        )
        con.execute(f"DELETE FROM cand WHERE __tokens > {cfg.max_tokens}")
    within = matched - too_long
    # one copy per row, the copy from the first input by label (not by the recipe's order)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE cand AS SELECT * FROM cand "
        "QUALIFY row_number() OVER (PARTITION BY __key ORDER BY __input, __file, __row) = 1"
    )
    unique = count("SELECT count(*) FROM cand")
    con.execute("DELETE FROM cand WHERE __key IN (SELECT __key FROM picked)")
    eligible = count("SELECT count(*) FROM cand")
    measure = "count(*)" if cfg.unit == "samples" else "sum(__tokens)"
    available = count(f"SELECT {measure} FROM cand")
    take = "__n <= {t}" if cfg.unit == "samples" else "__before < {t}"
    con.execute(
        f"INSERT INTO picked SELECT __file, __row, __input, __tokens, __key, __order, "
        f"{_lit(bucket.name)} FROM ("
        f"  SELECT *, row_number() OVER w AS __n,"
        f"    coalesce(sum(__tokens) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),"
        f"      0) AS __before"
        f"  FROM (SELECT *, md5('{int(cfg.seed)}' || chr(0) || __key) AS __order FROM cand)"
        f"  WINDOW w AS (ORDER BY __order, __key)"
        f") WHERE {take.format(t=int(target))}"
    )
    mine = f"FROM picked WHERE __bucket = {_lit(bucket.name)}"
    rows = count(f"SELECT count(*) {mine}")
    tokens = count(f"SELECT sum(__tokens) {mine}")
    taken = dict(con.execute(f"SELECT __input, count(*) {mine} GROUP BY __input").fetchall())
    achieved = rows if cfg.unit == "samples" else tokens
    report = {
        "name": bucket.name,
        "target": target,
        "achieved": achieved,
        "available": available,
        "shortfall": max(0, target - achieved),
        "inputs": [{**s.summary(), "taken": int(taken.get(s.label, 0))} for s in sources],
        # beyond the five numbers: where the other rows went
        "weight": bucket.weight,
        "where": bucket.where,
        "rows": rows,
        "tokens": tokens,
        "read": read,
        "matched": matched,
        "too_long": too_long,
        "duplicates": within - unique,
        "taken_by_earlier_buckets": unique - eligible,
        "seconds": round(time.time() - t0, 3),
    }
    if report["shortfall"]:
        log.warning(
            "bucket %s: %d of %d %s (only %d available): short by %d, nothing repeated",
            bucket.name,
            achieved,
            target,
            cfg.unit,
            available,
            report["shortfall"],
        )
    return report


def _stage(report: dict[str, Any]) -> dict[str, Any]:
    """A bucket as a stage entry of the manifest (what `factory stats` lists per stage)."""
    drops = {
        "where": report["read"] - report["matched"],
        "too_long": report["too_long"],
        "duplicate_row": report["duplicates"],
        "taken_by_earlier_bucket": report["taken_by_earlier_buckets"],
        "over_target": report["matched"]
        - report["too_long"]
        - report["duplicates"]
        - report["taken_by_earlier_buckets"]
        - report["rows"],
    }
    return {
        "name": f"mix:{report['name']}",
        "inputs": report["read"],
        "outputs": report["rows"],
        "drops": {k: v for k, v in sorted(drops.items()) if v},
        "seconds": report["seconds"],
    }


# --- writing --------------------------------------------------------------------------------


def _stream(con, table: str, sources: list[Source]):
    """The full input rows of the locators in `table`, in the table's md5 order, each with
    its bucket and input label."""
    once = {s.path.resolve(): s for s in sources}.values()  # an input in two buckets: one scan
    scans = " UNION ALL ".join(f"SELECT * FROM {_scan(s)}" for s in once)
    rel = con.sql(
        f"SELECT t.* EXCLUDE (filename, file_row_number), p.__bucket, p.__input "
        f"FROM ({scans}) AS t "
        f"JOIN {table} AS p ON t.filename = p.__file AND t.file_row_number = p.__row "
        "ORDER BY p.__order, p.__key"
    )
    # DuckDB 2 names it to_arrow_reader, 1.x fetch_arrow_reader (pyproject allows both)
    reader = getattr(rel, "to_arrow_reader", None) or rel.fetch_arrow_reader
    reader = reader(BATCH_ROWS)
    for batch in reader:
        yield from batch.to_pylist()


def _with_mix_meta(row: dict[str, Any]) -> dict[str, Any]:
    bucket, label = row.pop("__bucket"), row.pop("__input")
    try:
        meta = json.loads(row["meta"]) if row.get("meta") else {}
    except json.JSONDecodeError:
        meta = {"original": row["meta"]}
    if not isinstance(meta, dict):
        meta = {"original": meta}
    meta["mix"] = {
        "bucket": bucket,
        "input": label,
        "source_run_id": row.get("run_id"),
        "source_recipe": row.get("recipe"),
        "source_recipe_fingerprint": row.get("recipe_fingerprint"),
    }
    row["meta"] = json.dumps(meta, sort_keys=True, ensure_ascii=False, default=str)
    return row


def _digest(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def default_mix_out(recipe: MixRecipe) -> Path:
    return Path("runs") / f"{recipe.name}-{recipe.fingerprint()}"


def resolve_inputs(recipe: MixRecipe, cwd: Path) -> dict[str, list[Source]]:
    """Every bucket's inputs, resolved (and their schemas checked) before any work."""
    out: dict[str, list[Source]] = {}
    for bucket in recipe.mix.buckets:
        out[bucket.name] = [resolve_input(spec, bucket.name, cwd) for spec in bucket.inputs]
    check_schemas([s for sources in out.values() for s in sources])
    return out


def run_mix(recipe: MixRecipe, out: Path, cwd: Path | None = None) -> dict[str, Any]:
    """Mix the inputs of `recipe` into the run directory `out`; returns the manifest written
    (or, with `up_to_date: True`, the one found when the same mix of the same inputs is there).
    Relative input paths resolve against `cwd` (default: the working directory)."""
    import duckdb

    from factory.pipeline import _iso, new_run_id, open_writers

    started = time.time()
    cwd, out = Path(cwd or Path.cwd()), Path(out)
    by_bucket = resolve_inputs(recipe, cwd)
    out_dir = out if out.is_absolute() else cwd / out
    for sources in by_bucket.values():
        for s in sources:
            if s.path.resolve() == out_dir.resolve():
                raise MixError(f"--out {out} is also the mix input {s.label}: choose another --out")
    targets = recipe.mix.targets()
    fingerprint = _digest(
        {
            "recipe": recipe.fingerprint(),
            "inputs": {b: [s.identity for s in srcs] for b, srcs in by_bucket.items()},
        }
    )
    with RunDir(out_dir) as rundir:
        previous = rundir.manifest()
        if previous is not None and previous.get("recipe_fingerprint") == fingerprint:
            log.info("%s is up to date (mix %s): nothing to do", out, fingerprint)
            return {**previous, "up_to_date": True}
        run_id = new_run_id(recipe)  # reads only recipe.name
        # open_writers reads recipe.name and recipe.output.{shard_rows, compression}
        traces, rejects, problems = open_writers(rundir, run_id, recipe, fingerprint)
        work = rundir.staging / "duckdb"
        work.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(":memory:", config={"temp_directory": str(work)})
        try:
            from filters.length import approx_tokens

            con.create_function("approx_tokens", approx_tokens, ["VARCHAR"], "BIGINT")
            locator = (
                "__file VARCHAR, __row BIGINT, __input VARCHAR, __tokens BIGINT, __key VARCHAR"
            )
            con.execute(f"CREATE TEMP TABLE rejected ({locator}, __bucket VARCHAR)")
            con.execute(f"CREATE TEMP TABLE picked ({locator}, __order VARCHAR, __bucket VARCHAR)")
            reports = []
            for bucket in recipe.mix.buckets:
                report = select_bucket(
                    con, bucket, by_bucket[bucket.name], targets[bucket.name], recipe
                )
                log.info(
                    "bucket %s: %d of %d %s (%d available)",
                    bucket.name,
                    report["achieved"],
                    report["target"],
                    recipe.mix.unit,
                    report["available"],
                )
                reports.append(report)
            sources = [s for srcs in by_bucket.values() for s in srcs]
            con.execute("ALTER TABLE rejected ADD COLUMN __order VARCHAR")
            con.execute("UPDATE rejected SET __order = __key")
            tokens = {"prompt": 0, "completion": 0}
            for row in _stream(con, "picked", sources):
                tokens["prompt"] += row.get("prompt_tokens") or 0
                tokens["completion"] += row.get("completion_tokens") or 0
                traces.add(_with_mix_meta(row))
            for row in _stream(con, "rejected", sources):
                rejects.add(
                    {**_with_mix_meta(row), "stage": "max_tokens", "drop_reason": "too_long"}
                )
        finally:
            con.close()
        published = {
            "traces": traces.publish(),
            "rejects": rejects.publish(),
            "problems": problems.publish(),
        }
        seconds = round(time.time() - started, 2)
        manifest = {
            "run_id": run_id,
            "factory_version": factory.__version__,
            "recipe_name": recipe.name,
            "recipe_fingerprint": fingerprint,
            "mix_fingerprint": recipe.fingerprint(),
            "generation_fingerprint": None,
            "recipe": recipe.to_dict(),
            "rank": 0,
            "world_size": 1,
            "started_at": _iso(started),
            "finished_at": _iso(time.time()),
            "seconds": seconds,
            "teacher": {
                "backend": "none (mix)",
                "model": None,
                "load_seconds": 0.0,
                "generate_seconds": 0.0,
                "requested": 0,
                "reused": 0,
                "failed": 0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "completion_tokens_per_s": 0.0,
            },
            "samples": {},
            "cost": {},
            "funnel": _funnel(reports, traces.total),
            "decontamination": None,
            "dedup": {},
            "stages": [_stage(r) for r in reports],
            "tokens_kept": tokens,
            "rows": {"traces": traces.total, "rejects": rejects.total, "problems": problems.total},
            "files": published,
            "mix": {
                "unit": recipe.mix.unit,
                "seed": recipe.mix.seed,
                "max_tokens": recipe.mix.max_tokens,
                "total": recipe.mix.total,
                "buckets": reports,
            },
        }
        rundir.publish(run_id, manifest)
    return manifest


def _funnel(reports: list[dict[str, Any]], kept: int) -> dict[str, int]:
    """Rows at each step, summed over buckets (an input named in two buckets counts twice)."""
    read = sum(r["read"] for r in reports)
    matched = sum(r["matched"] for r in reports)
    within = matched - sum(r["too_long"] for r in reports)
    unique = within - sum(r["duplicates"] + r["taken_by_earlier_buckets"] for r in reports)
    return {
        "read": read,
        "matched": matched,
        "within_max_tokens": within,
        "unique": unique,
        "kept": kept,
    }


def report_rows(manifest: dict[str, Any]) -> tuple[str, list[str], list[tuple]]:
    """(title, columns, rows) of the mix report: achieved vs target per bucket."""
    mix = manifest["mix"]
    unit = mix["unit"]
    title = f"mix ({unit}, seed {mix['seed']}, max_tokens {mix['max_tokens']})"
    columns = ["bucket", f"target {unit}", f"achieved {unit}", "of target", "available"]
    columns += ["shortfall", "rows", "inputs"]
    rows = []
    for b in mix["buckets"]:
        share = f"{b['achieved'] / b['target']:.1%}" if b["target"] else "-"
        inputs = ", ".join(f"{i['input']} ({i['taken']})" for i in b["inputs"])
        rows.append(
            (
                b["name"],
                b["target"],
                b["achieved"],
                share,
                b["available"],
                b["shortfall"] or "",
                b["rows"],
                inputs,
            )
        )
    return title, columns, rows
