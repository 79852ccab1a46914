"""`factory report` at a million traces: time to write the whole page, against a baseline
measured in the same run.

The run is bench_warehouse.py's synthetic run directory (real layout and schemas, `--rows`
samples, 80% kept, ~2 KB of reasoning each, two verifiers that disagree on 5%, drops at parse,
verify, dedup and decontamination), with a manifest that also records its stages, dedup and
decontamination blocks as `factory run` writes them, so every section of the report has data.

Timed (best of `--repeat` after one warm-up; page cache warm for both sides):
  - report     `build_report([run], out)`: queries, charts, HTML
  - queries    of which the warehouse queries alone (`report_data`)
  - baseline   `pyarrow.parquet.read_table` of the columns the report reads over every shard:
               the metadata it groups by (source, teacher_model, meta, completion_tokens,
               prompt_tokens, stage, drop_reason, sample_index, verdicts, dedup_cluster, id,
               problem_id, run_id) and the two texts whose lengths estimate reasoning tokens
               (reasoning, completion): the cost of getting those columns into memory at all
Printed: seconds, ratio report / baseline, the page's size and chart count. Goal: < 60 s.

    python benchmarks/bench_report.py [--rows 1000000] [--repeat 2] [--out DIR] [--keep|--reuse]
    python benchmarks/bench_report.py --rows 20000       # a quick check
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bench_warehouse import REJECTS, _best, reuse_or_write  # noqa: E402

READ_COLUMNS = [
    "id", "problem_id", "source", "teacher_model", "meta", "prompt_tokens",
    "completion_tokens", "sample_index", "verdicts", "dedup_cluster", "run_id", "reasoning",
    "completion",
]  # fmt: skip


def manifest_blocks(rows: int) -> dict:
    """Stages, dedup and decontamination blocks for a run of `rows` samples, 80% kept, its
    rejects split as bench_warehouse's REJECTS."""
    kept = rows * 4 // 5
    dropped = {reason: round((rows - kept) * share) for _, reason, share in REJECTS}
    stage_of = {reason: stage for stage, reason, _ in REJECTS}
    stages, live = [{"name": "generate", "inputs": rows // 4, "outputs": rows, "drops": {}}], rows
    for stage in dict.fromkeys(s for s, _, _ in REJECTS):
        drops = {r: n for r, n in dropped.items() if stage_of[r] == stage}
        stages.append(
            {"name": stage, "inputs": live, "outputs": live - sum(drops.values()), "drops": drops}
        )
        live -= sum(drops.values())
    return {
        "stages": stages,
        "dedup": {
            "traces": {
                "rows": kept + dropped["duplicate_exact"],
                "clusters": kept,
                "duplicates": dropped["duplicate_exact"],
                "largest_cluster": 2,
                "threshold": 0.9,
            }
        },
        "decontamination": {"n": 8, "benchmarks": {"gsm8k_test": 1319}},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "bench-report")
    ap.add_argument("--keep", action="store_true", help="keep the run directory afterwards")
    ap.add_argument("--reuse", action="store_true", help="reuse a run directory already at --out")
    a = ap.parse_args()

    import pyarrow.parquet as pq

    from factory.report import build_report
    from factory.report_data import report_data

    manifest, written = reuse_or_write(a.out, a.rows, a.reuse, manifest_blocks(a.rows))
    base = a.out / ".versions" / manifest["run_id"]
    files = {
        t: [str(base / f["path"]) for f in manifest["files"][t]] for t in ("traces", "rejects")
    }
    size = sum(Path(f).stat().st_size for fs in files.values() for f in fs)
    print(
        f"run: {manifest['rows']['traces']:,} kept + {manifest['rows']['rejects']:,} rejects, "
        f"{size / 1e9:.2f} GB of parquet, written in {written:.0f} s"
    )
    page = a.out.parent / f"{a.out.name}.html"

    def baseline():
        return [
            pq.read_table(files["traces"], columns=READ_COLUMNS),
            pq.read_table(files["rejects"], columns=[*READ_COLUMNS, "stage", "drop_reason"]),
        ]

    base_s, _ = _best(baseline, a.repeat)
    query_s, _ = _best(lambda: report_data([a.out]), a.repeat)
    report_s, result = _best(lambda: build_report([a.out], page), a.repeat)
    print(f"\n{'step':10} {'seconds':>8} {'vs baseline':>12}")
    print(f"{'report':10} {report_s:>8.2f} {report_s / base_s:>11.2f}x   (goal < 60 s)")
    print(f"{'queries':10} {query_s:>8.2f} {query_s / base_s:>11.2f}x")
    print(f"{'baseline':10} {base_s:>8.2f} {1:>11.2f}x   (pyarrow read of the columns it reads)")
    print(
        f"\npage: {result['bytes'] / 1e3:,.0f} kB, {len(result['charts'])} charts, "
        f"{len(result['sections'])} sections -> {page}"
    )
    if not a.keep:
        shutil.rmtree(a.out, ignore_errors=True)
        page.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
