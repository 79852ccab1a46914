from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from factory.errors import LockError, RunDirError
from factory.record import Record, arrow_schema
from factory.storage.atomic import write_json
from factory.storage.rundir import RunDir, read_manifest
from factory.storage.shards import ShardWriter, sha256_file


def test_second_run_on_the_same_directory_gets_a_lock_error(tmp_path):
    with RunDir(tmp_path / "run"), pytest.raises(LockError, match="in use by another factory run"):
        RunDir(tmp_path / "run").open()


def test_finished_run_is_never_overwritten(tmp_path):
    with RunDir(tmp_path / "run") as rd:
        rd.finish({"run_id": "x"})
    with pytest.raises(RunDirError, match="already holds a finished run"):
        RunDir(tmp_path / "run").open()
    assert read_manifest(tmp_path / "run") == {"run_id": "x"}


def test_foreign_non_empty_directory_is_refused(tmp_path):
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(RunDirError, match="not empty and is not a factory run directory"):
        RunDir(tmp_path).open()
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_crashed_attempt_is_cleaned(tmp_path):
    run = tmp_path / "run"
    with RunDir(run) as rd:
        (rd.staging / "half.parquet").write_bytes(b"partial")
        (run / "data").mkdir()
        (run / "data" / "train-00000-of-00003.parquet").write_bytes(b"old")
    with RunDir(run) as rd:  # no manifest: the leftovers belong to the crashed attempt
        assert not (run / "data").exists()
        assert list(rd.staging.iterdir()) == []


def test_manifest_errors(tmp_path):
    with pytest.raises(RunDirError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{broken")
    with pytest.raises(RunDirError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_atomic_json_leaves_no_temp_files(tmp_path):
    write_json(tmp_path / "m.json", {"a": 1})
    write_json(tmp_path / "m.json", {"a": 2})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def _row(i: int) -> dict:
    return Record(problem_id=f"p{i}", source="s", problem="q", gold="1", id=f"id{i}").row()


def test_shards_appear_only_on_publish(tmp_path):
    with RunDir(tmp_path) as rd:
        w = ShardWriter(
            tmp_path, rd.staging, "data", "train", arrow_schema(), 2, "zstd", {"run_id": "r"}
        )
        for i in range(5):
            w.add(_row(i))
        assert not (tmp_path / "data").exists()  # parts live in staging until published
        files = w.publish()
    names = [f["path"] for f in files]
    assert names == [f"data/train-0000{i}-of-00003.parquet" for i in range(3)]
    assert [f["rows"] for f in files] == [2, 2, 1]
    for f in files:
        assert sha256_file(tmp_path / f["path"]) == f["sha256"]
    table = pq.read_table(tmp_path / "data")
    assert table.num_rows == 5 and set(table.column("run_id").to_pylist()) == {"r"}
    assert (
        pq.read_schema(tmp_path / names[0]).field("messages").type
        == arrow_schema().field("messages").type
    )


def test_empty_table_still_gets_one_shard(tmp_path):
    with RunDir(tmp_path) as rd:
        files = ShardWriter(
            tmp_path, rd.staging, "data", "train", arrow_schema(), 10, "zstd"
        ).publish()
    assert files[0]["path"] == "data/train-00000-of-00001.parquet" and files[0]["rows"] == 0
    assert pq.read_table(tmp_path / files[0]["path"]).schema == arrow_schema()
