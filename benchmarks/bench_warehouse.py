"""`factory query` at a million traces: funnel, group-by, verifier-agreement and text-search
queries through the warehouse views, each against a baseline measured in the same run.

A synthetic run directory in the real layout is written first (`RunDir`, the kept-trace and
reject schemas of factory/record.py, `write_parquet` with its row groups, shards of
`output.shard_rows` = 50,000 rows, zstd, a manifest listing every shard): `--rows` samples,
80% kept and 20% rejects, each with ~2 KB of reasoning (words drawn Zipf-like from a
20k-word vocabulary, so the text compresses like prose, not like repeats), stored as a run
stores it: in `reasoning`, in `completion` (inside the think block) and in the assistant turn
of `messages`. Two verifiers (math, judge) disagree on 5% of rows; 0.1% of rows carry the
word `zyxneedle`.

Timed (best of `--repeat` runs after one warm-up, page cache warm for every side):
  - funnel            rows per stage and drop reason over traces + rejects
  - by source         acceptance by source (the README's example question)
  - by teacher        cost per kept trace by teacher (the `costs` view)
  - agreement         verifier disagreement (the `verdicts` view joined with itself)
  - LIKE              `count(*) WHERE reasoning LIKE '%zyxneedle%'`
Baselines: `pyarrow.parquet.read_table` of exactly the columns each query needs (the cost of
getting the data into memory at all); for LIKE, the same read of the `reasoning` column (the
decompression bound) and that read plus `pyarrow.compute.match_substring`. Printed: seconds,
the ratio query / baseline, and the bytes DuckDB read from the files (`rchar` of
/proc/self/io around the query) next to the compressed size of the columns it needs and of
the long-text columns: a metadata query that reads only metadata reads a few MB, not GBs.

    python benchmarks/bench_warehouse.py [--rows 1000000] [--repeat 3] [--out DIR] [--keep]
    python benchmarks/bench_warehouse.py --rows 20000        # a quick check
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARD_ROWS = 50_000  # output.shard_rows of the shipped recipes
SOURCES = [f"source_{k}" for k in range(8)]
TEACHERS = ["teacher-a", "teacher-b", "teacher-c"]
NEEDLE = "zyxneedle"
TEXT_COLUMNS = ("messages", "completion", "reasoning", "problem")
REJECTS = [  # (stage, drop_reason, share of rejects)
    ("parse", "no_answer", 0.35),
    ("verify", "wrong_answer", 0.45),
    ("dedup_traces", "duplicate_exact", 0.1),
    ("decontaminate_traces", "contaminated:gsm8k_test", 0.1),
]

QUERIES = {
    "funnel": (
        """
        SELECT stage, drop_reason, count(*) AS n FROM (
            SELECT 'kept' AS stage, NULL AS drop_reason FROM traces
            UNION ALL SELECT stage, drop_reason FROM rejects
        ) GROUP BY ALL ORDER BY n DESC
        """,
        {"traces": ["id"], "rejects": ["stage", "drop_reason"]},
    ),
    "by source": (
        """
        WITH samples AS (
            SELECT source, 1 AS kept FROM traces
            UNION ALL
            SELECT source, 0 FROM rejects WHERE sample_index IS NOT NULL AND stage != 'generate'
        )
        SELECT source, count(*) AS samples, sum(kept) AS kept, round(avg(kept), 3) AS acceptance
        FROM samples GROUP BY source ORDER BY source
        """,
        {"traces": ["source"], "rejects": ["source", "sample_index", "stage"]},
    ),
    "by teacher": (
        """
        SELECT teacher_model, sum(samples) AS samples, sum(kept) AS kept,
               sum(cost_usd) AS cost_usd, sum(cost_usd) / sum(kept) AS cost_per_kept_usd
        FROM costs GROUP BY teacher_model ORDER BY teacher_model
        """,
        {
            "traces": ["run_id", "teacher_model", "prompt_tokens", "completion_tokens"],
            "rejects": [
                "run_id",
                "teacher_model",
                "prompt_tokens",
                "completion_tokens",
                "sample_index",
                "stage",
            ],
        },
    ),
    "agreement": (
        """
        SELECT a.verifier AS a, b.verifier AS b, count(*) AS judged,
               count(*) FILTER (WHERE (a.verdict = 'pass') != (b.verdict = 'pass')) AS disagree
        FROM verdicts AS a JOIN verdicts AS b
          ON a.input = b.input AND a.id = b.id AND a.verifier < b.verifier
        GROUP BY ALL
        """,
        {"traces": ["id", "verdicts", "run_id"], "rejects": ["id", "verdicts", "run_id"]},
    ),
    "LIKE": (
        f"SELECT count(*) FROM traces WHERE reasoning LIKE '%{NEEDLE}%'",
        {"traces": ["reasoning"]},
    ),
}


# --- the synthetic run ------------------------------------------------------------------------


class Text:
    """Reasoning of ~2 KB per row from a pool of 16k ~1 KB chunks of words drawn Zipf-like
    from a 20k-word vocabulary (short words frequent, as in prose): row i joins two chunks
    picked by its index, so rows near each other rarely share text."""

    def __init__(self, seed: int = 0) -> None:
        rng = random.Random(seed)
        vocab = sorted(
            (
                "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
                for _ in range(20_000)
            ),
            key=len,
        )
        # Zipf-like: the short words are the frequent ones
        cum = list(itertools.accumulate(1 / rank for rank in range(1, len(vocab) + 1)))
        self.chunks = [" ".join(rng.choices(vocab, cum_weights=cum, k=200)) for _ in range(16_384)]
        self.problems = [
            " ".join(rng.choices(vocab, cum_weights=cum, k=40)) + "?" for _ in range(4_096)
        ]

    def reasoning(self, i: int) -> str:
        a = self.chunks[(i * 2_654_435_761) % 16_384]
        b = self.chunks[(i * 40_503 + 7) % 16_384]
        mid = f" {NEEDLE} " if i % 1000 == 7 else " "
        return f"Step {i}: {a}{mid}{b}"


def _table(text: Text, start: int, stop: int, schema, run_id: str, rejects: bool):
    import pyarrow as pa

    idx = range(start, stop)
    ids = [f"{i:020x}" for i in idx]
    reasoning = [text.reasoning(i) for i in idx]
    answers = [str(i % 997) for i in idx]
    completion = [
        f"<think>\n{r}\n</think>\n\nThe answer is \\boxed{{{a}}}."
        for r, a in zip(reasoning, answers, strict=True)
    ]
    problem = [text.problems[(i // 4) % 4_096] for i in idx]
    n = stop - start
    roles = pa.array(["system", "user", "assistant"] * n)
    contents = []
    for p, c in zip(problem, completion, strict=True):
        contents += ["Think step by step.", p, c]
    offsets = pa.array(range(0, 3 * n + 1, 3), type=pa.int32())
    message = schema.field("messages").type.value_type
    messages = pa.ListArray.from_arrays(
        offsets, pa.StructArray.from_arrays([roles, pa.array(contents)], fields=list(message))
    )
    math = ["pass" if (i % 5 or not rejects) else "fail" for i in idx]
    judge = [
        m if i % 20 else ("fail" if m == "pass" else "pass") for m, i in zip(math, idx, strict=True)
    ]
    verdict_type = schema.field("verdicts").type.value_type
    v_names, v_verdicts, v_reasons = [], [], []
    for m, j in zip(math, judge, strict=True):
        v_names += ["math", "judge"]
        v_verdicts += [m, j]
        v_reasons += ["exact_number" if m == "pass" else "wrong_answer", f"judge_{j}"]
    verdicts = pa.ListArray.from_arrays(
        pa.array(range(0, 2 * n + 1, 2), type=pa.int32()),
        pa.StructArray.from_arrays(
            [pa.array(v_names), pa.array(v_verdicts), pa.array(v_reasons)],
            fields=list(verdict_type),
        ),
    )
    columns = {
        "id": ids,
        "problem_id": [f"p{i // 4}" for i in idx],
        "source": [SOURCES[(i // 4) % len(SOURCES)] for i in idx],
        "kind": ["reasoning"] * n,
        "problem": problem,
        "gold": answers,
        "pseudo_label": [False] * n,
        "sample_index": [i % 4 for i in idx],
        "messages": messages,
        "completion": completion,
        "reasoning": reasoning,
        "answer": answers,
        "verdict": math,
        "verdicts": verdicts,
        "teacher_model": [TEACHERS[i % 3] for i in idx],
        "temperature": [0.7] * n,
        "top_p": [0.95] * n,
        "prompt_tokens": [60 + i % 40 for i in idx],
        "completion_tokens": [len(c) // 4 for c in completion],
        "finish_reason": ["stop"] * n,
        "generation_fingerprint": ["0123456789abcdef"] * n,
        "dedup_cluster": ids,
        "meta": ['{"think_tags": "both", "verify_method": "exact_number"}'] * n,
        "recipe": ["bench-warehouse"] * n,
        "recipe_fingerprint": ["fedcba9876543210"] * n,
        "run_id": [run_id] * n,
    }
    if rejects:
        rng = random.Random(start)
        picks = rng.choices(REJECTS, weights=[w for *_, w in REJECTS], k=n)
        columns["stage"] = [s for s, _, _ in picks]
        columns["drop_reason"] = [r for _, r, _ in picks]
    return pa.Table.from_arrays([pa.array(columns[f.name], f.type) for f in schema], schema=schema)


def write_run(out: Path, rows: int, extra: dict | None = None) -> dict:
    """A finished run directory with `rows` samples (80% kept), in the layout `factory run`
    writes, `extra` added to its manifest; returns the manifest."""
    from factory.pipeline import REJECT_COLUMNS, _problem_schema
    from factory.record import arrow_schema
    from factory.storage.rundir import RunDir
    from factory.storage.shards import sha256_file, write_parquet

    shutil.rmtree(out, ignore_errors=True)
    text, run_id = Text(), "bench-warehouse-20260101-000000-0000"
    kept = rows * 4 // 5
    tables = {
        "traces": ("data", "train", arrow_schema(), 0, kept, False),
        "rejects": ("rejects", "rejects", arrow_schema(REJECT_COLUMNS), kept, rows, True),
    }
    files: dict[str, list] = {}
    with RunDir(out) as rundir:
        version = rundir.version_dir(run_id)
        for table, (folder, prefix, schema, lo, hi, rejects) in tables.items():
            (version / folder).mkdir(parents=True, exist_ok=True)
            count = max(1, -(-(hi - lo) // SHARD_ROWS))
            files[table] = []
            for k in range(count):
                start, stop = lo + k * SHARD_ROWS, min(hi, lo + (k + 1) * SHARD_ROWS)
                path = version / folder / f"{prefix}-{k:05d}-of-{count:05d}.parquet"
                write_parquet(_table(text, start, stop, schema, run_id, rejects), path, "zstd", "x")
                files[table].append(
                    {
                        "path": f"{folder}/{path.name}",
                        "rows": stop - start,
                        "sha256": sha256_file(path),
                    }
                )
        problems = _problem_schema(arrow_schema())
        (version / "problems").mkdir()
        write_parquet(
            problems.empty_table(),
            version / "problems/problems-00000-of-00001.parquet",
            "zstd",
            "x",
        )
        files["problems"] = [{"path": "problems/problems-00000-of-00001.parquet", "rows": 0}]
        samples = rows  # every row is a sample the teacher answered
        manifest = {
            "run_id": run_id,
            "factory_version": "bench",
            "recipe_name": "bench-warehouse",
            "recipe_fingerprint": "fedcba9876543210",
            "generation_fingerprint": "0123456789abcdef",
            "started_at": "2026-01-01T00:00:00+00:00",
            "finished_at": "2026-01-01T01:00:00+00:00",
            "seconds": 3600.0,
            "teacher": {"backend": "openai", "model": "teacher-a"},
            "samples": {"total": samples},
            "cost": {"currency": "USD", "all_samples": 1234.5, "per_kept_trace": 1234.5 / kept},
            "funnel": {"problems": rows // 4, "generated": rows, "kept": kept},
            "rows": {"traces": kept, "rejects": rows - kept, "problems": 0},
            "files": files,
            **(extra or {}),
        }
        rundir.publish(run_id, manifest)
    return manifest


def reuse_or_write(out: Path, rows: int, reuse: bool, extra: dict | None = None):
    """The run at `out` if `reuse` and it is there, else a new one; (manifest, seconds)."""
    t0 = time.perf_counter()
    if reuse and (out / "manifest.json").is_file():
        manifest = json.loads((out / "manifest.json").read_text())
    else:
        manifest = write_run(out, rows, extra)
    return manifest, time.perf_counter() - t0


# --- measuring --------------------------------------------------------------------------------


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def _best(fn, repeat: int) -> tuple[float, object]:
    result = fn()  # warm-up (page cache, DuckDB's parquet metadata)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def _column_bytes(files: list[str]) -> dict[str, int]:
    """Compressed bytes per top-level column over `files` (from the parquet footers)."""
    import pyarrow.parquet as pq

    sizes: dict[str, int] = {}
    for f in files:
        meta = pq.ParquetFile(f).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                name = chunk.path_in_schema.split(".")[0]
                sizes[name] = sizes.get(name, 0) + chunk.total_compressed_size
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-warehouse")
    ap.add_argument("--keep", action="store_true", help="keep the run directory afterwards")
    ap.add_argument("--reuse", action="store_true", help="reuse a run directory already at --out")
    a = ap.parse_args()

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from factory.warehouse import open_warehouse

    manifest, written = reuse_or_write(a.out, a.rows, a.reuse)
    base = a.out / ".versions" / manifest["run_id"]
    files = {
        t: [str(base / f["path"]) for f in manifest["files"][t]] for t in ("traces", "rejects")
    }
    sizes = {t: _column_bytes(fs) for t, fs in files.items()}
    total = sum(sum(s.values()) for s in sizes.values())
    text = sum(s.get(c, 0) for s in sizes.values() for c in TEXT_COLUMNS)
    first = pq.ParquetFile(files["traces"][0]).metadata
    print(
        f"run: {manifest['rows']['traces']:,} kept + {manifest['rows']['rejects']:,} rejects, "
        f"{len(files['traces']) + len(files['rejects'])} shards, {total / 1e9:.2f} GB of column "
        f"data ({text / 1e9:.2f} GB of it long text: {', '.join(TEXT_COLUMNS)}); "
        f"{first.num_row_groups} row groups of {first.row_group(0).num_rows:,} rows per shard; "
        f"written in {written:.0f} s"
    )

    con = open_warehouse([a.out])
    print(f"\n{'query':12} {'DuckDB s':>9} {'baseline s':>11} {'ratio':>7} {'read MB':>9} "
          f"{'needed MB':>10}  result")  # fmt: skip
    for name, (sql, needed) in QUERIES.items():

        def run(sql=sql):
            return con.execute(sql).fetchall()

        before = _rchar()
        run()
        read = _rchar() - before
        seconds, result = _best(run, a.repeat)

        def baseline(needed=needed):
            return [pq.read_table(files[t], columns=cols) for t, cols in needed.items()]

        base_s, _ = _best(baseline, a.repeat)
        need = sum(sizes[t].get(c, 0) for t, cols in needed.items() for c in cols)
        shown = result if len(result) <= 4 else f"{len(result)} rows, first {result[0]}"
        print(
            f"{name:12} {seconds:>9.3f} {base_s:>11.3f} {seconds / base_s:>6.2f}x "
            f"{read / 1e6:>9.2f} {need / 1e6:>10.2f}  {shown}"
        )
        if name == "LIKE":

            def arrow_like():
                t = pq.read_table(files["traces"], columns=["reasoning"])
                return pc.sum(pc.match_substring(t.column("reasoning"), NEEDLE)).as_py()

            like_s, found = _best(arrow_like, a.repeat)
            expected = sum(1 for i in range(manifest["rows"]["traces"]) if i % 1000 == 7)
            assert result == [(expected,)] and found == expected, (result, found, expected)
            print(
                f"{'':12} {'':>9} {like_s:>11.3f} {seconds / like_s:>6.2f}x "
                f"{'':>9} {'':>10}  (baseline: pyarrow read + match_substring: {found})"
            )
    print(
        "\nLIKE found the planted rows (checked); bytes read by DuckDB from rchar of /proc/self/io"
    )
    con.close()
    if not a.keep:
        shutil.rmtree(a.out, ignore_errors=True)


if __name__ == "__main__":
    main()
