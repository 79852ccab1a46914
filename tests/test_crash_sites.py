"""Kill -9 at each named crash site (RELIABILITY.md R2), then resume.

`FACTORY_CRASH_AT` (factory/crash.py) makes the run SIGKILL itself at one instruction: after a
response before it is journaled, mid sample-shard write, after the temp write before rename,
after rename before the index, before the journal reset, mid output-shard write, between
shard renames, before and after the version swap. After each crash the visible run directory
must be a complete earlier version or nothing — never a mix — and resuming must publish exactly
what an uninterrupted run publishes, each id once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from factory.crash import SITES
from factory.storage.rundir import current_version
from tests.factory.teachers.fault_server import Faults, FaultServer
from tests.helpers import factory, loopback_overrides, problems_file

PROBLEMS = 60  # x n=2: 120 requests, sealed every 25, published in parts of 20 rows
CASES = [
    "response_received@40",
    "seal_mid_write@2",
    "seal_before_rename@2",
    "seal_before_index@2",
    "seal_before_journal_reset@2",
    "shard_mid_write@2",
    "publish_mid_rename@2",
    "publish_before_swap",
    "publish_after_swap",
]


def test_every_crash_site_is_tested():
    assert {case.split("@")[0] for case in CASES} == set(SITES)


@pytest.fixture(scope="module")
def server():
    with FaultServer(Faults(latency=(0.0, 0.005), seed=2)) as server:
        yield server


def _args(server: FaultServer, problems: Path, out: Path, *extra: str) -> list[str]:
    return [
        "run",
        "recipe=math-cot",
        *loopback_overrides(server.url, problems),
        "teacher.n=2",
        "teacher.concurrency=4",
        "dedup.problems.near=false",
        "dedup.traces.near=false",
        "output.seal_rows=25",
        "output.shard_rows=20",
        *extra,
        "--out",
        str(out),
    ]


def _rows(out: Path) -> list[tuple]:
    """Every published row of every table, without the per-run columns."""
    rows = []
    for table in ("data", "rejects", "problems"):
        t = pq.read_table(out / table)
        keep = [c for c in t.column_names if c not in ("run_id", "recipe_fingerprint")]
        rows += [(table, *r.values()) for r in t.select(keep).to_pylist()]
    return sorted(rows, key=repr)


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    problems = problems_file(tmp / "p.jsonl", PROBLEMS)
    done = factory(*_args(server, problems, tmp / "run"))
    assert done.returncode == 0, done.stderr
    return problems, _rows(tmp / "run")


def _assert_consistent(out: Path) -> str | None:
    """What a reader sees is one complete version (or nothing): returns its run id."""
    if not (out / "manifest.json").exists():
        assert not (out / "data").exists()
        return None
    manifest = json.loads((out / "manifest.json").read_text())
    assert current_version(out).name == manifest["run_id"]
    for table, files in manifest["files"].items():
        folder = {"traces": "data"}.get(table, table)
        assert sorted(os.listdir(out / folder)) == sorted(Path(f["path"]).name for f in files)
        count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/{folder}/*.parquet')")
        assert count.fetchall() == [(manifest["rows"][table],)]
    return manifest["run_id"]


@pytest.mark.parametrize("site", CASES)
def test_kill_at_a_named_site_then_resume_publishes_what_an_unbroken_run_does(
    site, server, reference, tmp_path
):
    problems, expected = reference
    out = tmp_path / "run"
    old = None
    if site.startswith("publish"):  # a published version that the crash must leave intact
        first = factory(*_args(server, problems, out, "parse.think=required"))
        assert first.returncode == 0, first.stderr
        old = _assert_consistent(out)
    crashed = factory(*_args(server, problems, out), env={"FACTORY_CRASH_AT": site})
    assert crashed.returncode == -9, crashed.stderr  # it really died at the site
    seen = _assert_consistent(out)
    if site == "publish_after_swap":
        assert seen != old  # the swap is the commit point: the new version is whole
    else:
        assert seen == old
    resumed = factory(*_args(server, problems, out))
    assert resumed.returncode == 0, resumed.stderr
    _assert_consistent(out)
    assert _rows(out) == expected
    ids = [
        r[0] for r in duckdb.sql(f"SELECT id FROM read_parquet('{out}/data/*.parquet')").fetchall()
    ]
    assert len(ids) == len(set(ids))
    assert not (out / ".staging").exists() and not list(out.glob("generations/*/.staging"))
    assert len(list((out / ".versions").iterdir())) == 1
