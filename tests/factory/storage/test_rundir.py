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


def _publish_version(rd: RunDir, run_id: str, rows: int) -> dict:
    version = rd.version_dir(run_id)
    files = {}
    for table, prefix in (("data", "train"), ("rejects", "rejects"), ("problems", "problems")):
        w = ShardWriter(
            version, rd.staging, table, prefix, arrow_schema(), 10, "zstd", {"run_id": run_id}
        )
        for i in range(rows):
            w.add(_row(i))
        files[table] = w.publish()
    manifest = {"run_id": run_id, "files": files}
    rd.publish(run_id, manifest)
    return manifest


def test_publish_swaps_versions_and_drops_the_old_one(tmp_path):
    run = tmp_path / "run"
    with RunDir(run) as rd:
        _publish_version(rd, "v1", 3)
    assert pq.read_table(run / "data").num_rows == 3
    with RunDir(run) as rd:
        assert rd.manifest()["run_id"] == "v1"
        _publish_version(rd, "v2", 5)
    table = pq.read_table(run / "data" / "train-00000-of-00001.parquet")
    assert table.num_rows == 5 and set(table.column("run_id").to_pylist()) == {"v2"}
    assert sorted(p.name for p in (run / ".versions").iterdir()) == ["v2"]
    assert read_manifest(run)["run_id"] == "v2"
    assert not (run / ".staging").exists()


def test_crashed_attempt_is_cleaned_but_generations_kept(tmp_path):
    run = tmp_path / "run"
    with RunDir(run) as rd:
        _publish_version(rd, "v1", 2)
        rd.staging.mkdir(exist_ok=True)  # as a crashed later attempt would have left it
        (rd.staging / "half.parquet").write_bytes(b"partial")
        rd.version_dir("v2-crashed").mkdir(parents=True)  # written, never swapped in
        (run / "generations" / "fp").mkdir(parents=True)
        (run / "generations" / "fp" / "journal.jsonl").write_bytes(b"kept")
    with RunDir(run) as rd:
        assert list(rd.staging.iterdir()) == []
        assert sorted(p.name for p in rd.versions.iterdir()) == ["v1"]
        assert (run / "generations" / "fp" / "journal.jsonl").read_bytes() == b"kept"
        assert pq.read_table(run / "data").num_rows == 2


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


def test_a_run_directory_of_the_older_layout_keeps_its_data_and_moves_on(tmp_path):
    """Before `.current`, each table linked straight into its version and the manifest was a
    plain file: opening such a folder must not delete the version those links point at."""
    import os

    run = tmp_path / "run"
    with RunDir(run) as rd:
        _publish_version(rd, "v1", 3)
    for table in ("data", "rejects", "problems"):  # rewrite it as the older layout
        (run / table).unlink()
        os.symlink(f".versions/v1/{table}", run / table)
    manifest = (run / ".versions" / "v1" / "manifest.json").read_text()
    (run / "manifest.json").unlink()
    (run / "manifest.json").write_text(manifest)
    (run / ".current").unlink()
    with RunDir(run) as rd:
        assert rd.manifest()["run_id"] == "v1" and pq.read_table(run / "data").num_rows == 3
        _publish_version(rd, "v2", 5)
    assert read_manifest(run)["run_id"] == "v2" and pq.read_table(run / "data").num_rows == 5
    assert sorted(p.name for p in (run / ".versions").iterdir()) == ["v2"]
