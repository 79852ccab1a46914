"""Crash and resume with the openai backend against the loopback fault server (RELIABILITY.md
R1, R3, R5, R7–R10, R12): kill -9 at random moments, SIGTERM, a second run on the same
folder, tombstones and --retry-failed, order independence. The factory runs as a real
subprocess; the server runs in the test process so it can count what was asked."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from factory.record import sample_id
from factory.storage.journal import read_journal
from tests.factory.teachers.fault_server import Faults, FaultServer, answer_for
from tests.helpers import FACTORY, REPO, factory, loopback_overrides, problems_file


def _args(server: FaultServer, problems: Path, n: int = 2, **extra: str) -> list[str]:
    fast = {
        "teacher.n": str(n),
        "teacher.concurrency": "32",
        "teacher.max_retries": "8",
        "teacher.retry_base_s": "0.01",
        "teacher.retry_max_s": "0.05",
        "dedup.problems.near": "false",
        "dedup.traces.near": "false",
    }
    return [
        "run",
        "recipe=math-cot",
        *loopback_overrides(server.url, problems, **{**fast, **extra}),
    ]


def _all_ids(out: Path) -> list[str]:
    con = duckdb.connect()
    return [
        r[0]
        for r in con.execute(
            f"SELECT id FROM read_parquet('{out}/data/*.parquet') UNION ALL "
            f"SELECT id FROM read_parquet('{out}/rejects/*.parquet') WHERE id IS NOT NULL"
        ).fetchall()
    ]


def _journal_ids(out: Path) -> set[str]:
    return {
        r["id"]
        for j in out.glob("generations/*/journal.jsonl")
        for r in read_journal(j, repair=False)
    }


def _wait_for_journal(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _journal_ids(out):
            return
        time.sleep(0.05)
    raise AssertionError("the run never journaled a sample")


def test_kill_9_at_random_moments_then_resume_gives_every_id_exactly_once(tmp_path):
    import datasets

    problems = problems_file(tmp_path / "p.jsonl", 1000)
    out = tmp_path / "run"
    faults = Faults(latency=(0.0, 0.01), rate_limit=0.02, server_error=0.02, reset=0.01, seed=5)
    rng = random.Random(11)
    kills = 0
    with FaultServer(faults) as server:
        args = [*_args(server, problems, n=2), "--out", str(out)]
        for _ in range(20):
            proc = subprocess.Popen(
                [FACTORY, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if kills == 0:  # the first kill lands after real progress, the rest anywhere
                _wait_for_journal(out, proc)
            time.sleep(rng.uniform(0.05, 0.6))
            if proc.poll() is not None:
                break
            proc.kill()  # SIGKILL: no cleanup of any kind
            proc.wait()
            kills += 1
        final = factory(*args)
        assert final.returncode == 0, final.stderr
        requested_total = sum(server.requests.values())
        succeeded_total = sum(server.successes.values())
    assert kills >= 10  # it really was interrupted, many times

    manifest = json.loads((out / "manifest.json").read_text())
    fp = manifest["generation_fingerprint"]
    expected = {sample_id(f"p:q{i}", k, fp) for i in range(1000) for k in range(2)}
    ids = _all_ids(out)
    assert len(ids) == len(set(ids)) == 2000 and set(ids) == expected  # exactly once, none missing
    assert manifest["samples"]["total"] == 2000 and manifest["samples"]["tombstones"] == 0
    traces = manifest["rows"]["traces"]
    assert duckdb.sql(f"SELECT count(*) FROM read_parquet('{out}/data/*.parquet')").fetchall() == [
        (traces,)
    ]
    assert (
        len(
            datasets.load_dataset(
                "parquet", data_files=str(out / "data" / "*.parquet"), split="train"
            )
        )
        == traces
    )
    assert not (out / ".staging").exists() and not list(out.glob("generations/*/.staging"))
    # each row is the answer to its own request
    rows = duckdb.sql(
        f"SELECT problem, reasoning FROM read_parquet('{out}/data/*.parquet')"
    ).fetchall()
    assert rows and all(reasoning == answer_for(problem, faults)[0] for problem, reasoning in rows)
    # requests in flight at a kill are asked again: wasted, but never stored twice
    assert succeeded_total >= 2000 and requested_total >= succeeded_total
    # R8: and reported; each kill can waste at most the client's window (2 x concurrency)
    assert 0 < manifest["samples"]["wasted_requests"] <= kills * 64
    # tokens are counted per stored sample, so resuming never double counts them
    expected_tokens = (
        sum(
            len(answer_for(f"Calculate {i // 50} + {i % 50 + 1}.", faults)[0].split()) + 4
            for i in range(1000)
        )
        * 2
    )
    assert manifest["samples"]["completion_tokens"] == expected_tokens


def test_sigterm_flushes_and_resume_asks_only_for_the_rest(tmp_path):
    problems = problems_file(tmp_path / "p.jsonl", 300)
    out = tmp_path / "run"
    with FaultServer(Faults(latency=(0.02, 0.05))) as server:
        args = [*_args(server, problems, n=1, **{"teacher.concurrency": "4"}), "--out", str(out)]
        proc = subprocess.Popen(
            [FACTORY, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        _wait_for_journal(out, proc)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 143, stderr
        assert "rerun the same command to resume" in stderr
        saved = _journal_ids(out)
        assert 0 < len(saved) < 300
        before = dict(server.successes)
        seen_unsaved = {rid for rid, count in server.requests.items() if count} - saved
        final = factory(*args)
        assert final.returncode == 0, final.stderr
        assert all(server.successes[rid] == before[rid] for rid in saved)  # never asked again
    assert len(_all_ids(out)) == 300
    # R8: requests the server saw but the run never stored are reported as wasted; at most
    # the client's window (2 x concurrency) can have been handed out and lost
    wasted = json.loads((out / "manifest.json").read_text())["samples"]["wasted_requests"]
    assert len(seen_unsaved) <= wasted <= 8


def test_second_run_on_the_same_folder_gets_a_lock_error(tmp_path):
    problems = problems_file(tmp_path / "p.jsonl", 200)
    out = tmp_path / "run"
    with FaultServer(Faults(latency=(0.05, 0.1))) as server:
        args = [*_args(server, problems, n=1, **{"teacher.concurrency": "2"}), "--out", str(out)]
        first = subprocess.Popen(
            [FACTORY, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            _wait_for_journal(out, first)
            second = factory(*args)
            assert second.returncode == 2 and "in use by another factory run" in second.stderr
        finally:
            first.kill()
            first.wait()


def test_tombstones_are_counted_excluded_and_retried_on_request(tmp_path):
    problems = problems_file(tmp_path / "p.jsonl", 20)
    out = tmp_path / "run"
    with FaultServer(Faults()) as server:
        args = [*_args(server, problems, n=1, **{"teacher.max_retries": "1"}), "--out", str(out)]
        dry = factory(*args[:-2], "--dry-run")
        gen_fp = dry.stdout.split("# generation fingerprint: ")[1].strip()
        doomed = {sample_id("p:q3", 0, gen_fp), sample_id("p:q7", 0, gen_fp)}
        server.faults.always_fail = set(doomed)
        first = factory(*args)
        assert first.returncode == 0, first.stderr
        assert "2 failed" in first.stdout
        m = json.loads((out / "manifest.json").read_text())
        assert m["samples"]["tombstones"] == 2 and m["teacher"]["failed"] == 2
        rejected = duckdb.sql(
            f"SELECT id, drop_reason FROM read_parquet('{out}/rejects/*.parquet') WHERE stage = 'generate'"
        ).fetchall()
        assert sorted(rejected) == sorted((rid, "teacher_server_error") for rid in doomed)
        kept = {
            r[0]
            for r in duckdb.sql(f"SELECT id FROM read_parquet('{out}/data/*.parquet')").fetchall()
        }
        assert not kept & doomed
        from factory.stats import run_stats

        by_source = run_stats(out)["by_source"]
        assert sum(r["generated"] for r in by_source) == 18  # tombstones were never generated
        # the server recovers; a plain rerun asks nothing, --retry-failed asks only for those two
        server.faults.always_fail.clear()
        asked = sum(server.requests.values())
        assert factory(*args).returncode == 0 and sum(server.requests.values()) == asked
        retry = factory(*args, "--retry-failed")
        assert retry.returncode == 0, retry.stderr
        assert sum(server.requests.values()) - asked == 2
        assert all(server.successes[rid] == 1 for rid in doomed)
        m = json.loads((out / "manifest.json").read_text())
        assert m["samples"]["tombstones"] == 0 and m["samples"]["total"] == 20


def test_truncated_replies_are_never_published(tmp_path):
    problems = problems_file(tmp_path / "p.jsonl", 30)
    with FaultServer(Faults(length=0.5, seed=2)) as server:
        result = factory(*_args(server, problems, n=1), "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "run"
    assert duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/data/*.parquet') WHERE finish_reason != 'stop'"
    ).fetchall() == [(0,)]
    truncated = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{out}/rejects/*.parquet') WHERE drop_reason = 'truncated'"
    ).fetchall()[0][0]
    assert truncated > 5


def test_order_independence_under_random_latency(tmp_path):
    problems = problems_file(tmp_path / "p.jsonl", 200)
    outs = []
    for run, latency in enumerate([(0.0, 0.0), (0.0, 0.03)]):
        with FaultServer(Faults(latency=latency, seed=1 + run)) as server:
            out = tmp_path / f"run{run}"
            assert factory(*_args(server, problems), "--out", str(out)).returncode == 0
            outs.append(out)
    a, b = (
        duckdb.sql(f"SELECT * EXCLUDE (run_id) FROM read_parquet('{o}/data/*.parquet')").fetchall()
        for o in outs
    )
    assert a == b and len(a) > 100  # same rows in the same order, whatever the timing


def test_cost_per_accepted_trace_and_budget_stop(tmp_path):
    problems = problems_file(tmp_path / "p.jsonl", 100)
    out = tmp_path / "run"
    price = [
        "prices={fake: {prompt: 1000000, completion: 2000000}}"
    ]  # $1 / $2 per token: easy sums
    with FaultServer(Faults()) as server:
        base = [*_args(server, problems, n=1, **{"teacher.concurrency": "1"}), *price]
        first = factory(*base, "budget_usd=100", "--out", str(out))
        assert first.returncode == 0, first.stderr
        m = json.loads((out / "manifest.json").read_text())
        cost = m["cost"]
        assert cost["budget_exhausted"] and 0 < m["samples"]["total"] < 100
        expected = m["samples"]["prompt_tokens"] * 1 + m["samples"]["completion_tokens"] * 2
        assert cost["all_samples"] == pytest.approx(expected)
        assert (
            100 <= cost["all_samples"] < 100 + 40
        )  # stops at the budget, overshoot <= one request
        assert cost["per_kept_trace"] == pytest.approx(expected / m["rows"]["traces"])
        asked = sum(server.requests.values())
        # same budget: nothing more; a larger one goes on from where it stopped
        assert factory(*base, "budget_usd=100", "--out", str(out)).returncode == 0
        assert sum(server.requests.values()) == asked
        more = factory(*base, "budget_usd=100000", "--out", str(out))
        assert more.returncode == 0, more.stderr
        m = json.loads((out / "manifest.json").read_text())
        assert m["samples"]["total"] == 100 and not m["cost"]["budget_exhausted"]
        assert sum(server.requests.values()) == 100  # nothing was asked twice
        stats = factory("stats", str(out))
        assert "$ per kept trace" in stats.stdout


def test_disk_full_while_publishing_leaves_nothing_half_visible_and_resumes(tmp_path, monkeypatch):
    import errno

    import pyarrow.parquet as pq

    from factory.pipeline import run_recipe
    from factory.recipe import load_recipe

    problems = problems_file(tmp_path / "p.jsonl", 40)
    out = tmp_path / "run"
    real_write = pq.ParquetWriter.write_table

    def full_disk(self, table, *args, **kwargs):
        if "/data/" in str(self.where):  # the kept-traces table: fail like a full disk would
            raise OSError(errno.ENOSPC, "No space left on device", str(self.where))
        return real_write(self, table, *args, **kwargs)

    with FaultServer(Faults()) as server:
        overrides = [a for a in _args(server, problems, n=1)[2:]]
        recipe = load_recipe("math-cot", overrides)
        monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk)
        with pytest.raises(OSError) as info:
            run_recipe(recipe, out)
        assert info.value.errno == errno.ENOSPC
        assert not (out / "manifest.json").exists() and not (out / "data").exists()
        monkeypatch.setattr(pq.ParquetWriter, "write_table", real_write)
        asked = sum(server.requests.values())
        m = run_recipe(recipe, out)
        assert sum(server.requests.values()) == asked  # every sample was already safe
        assert m["teacher"]["reused"] == 40 and m["samples"]["total"] == 40
        assert sorted(p.name for p in (out / ".versions").iterdir()) == [m["run_id"]]
        assert (
            len(duckdb.sql(f"SELECT id FROM read_parquet('{out}/data/*.parquet')").fetchall())
            == m["rows"]["traces"]
        )
