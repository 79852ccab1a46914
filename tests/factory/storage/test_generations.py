from __future__ import annotations

import pytest

from factory.errors import RunDirError
from factory.record import Record
from factory.storage.generations import GenerationStore


def _sample(i: int) -> Record:
    return Record(
        problem_id=f"p{i}",
        source="s",
        problem="q",
        gold="1",
        id=f"id{i}",
        sample_index=0,
        messages=[{"role": "user", "content": "q"}],
        completion=f"<think>{i}</think>\\boxed{{1}}",
        prompt_tokens=3,
        completion_tokens=4,
        finish_reason="stop",
        meta={"k": i},
    )


def test_samples_survive_reopen_journal_and_sealed(tmp_path):
    store = GenerationStore(tmp_path, seal_rows=3).open()
    for i in range(5):
        store.add(_sample(i))
    store.close()  # 3 sealed, 2 in the journal
    assert (tmp_path / "samples-00000.parquet").exists()
    again = GenerationStore(tmp_path, seal_rows=3).open()
    assert sorted(again.samples) == [f"id{i}" for i in range(5)]
    assert again.samples["id4"] == _sample(4)
    assert again.samples["id1"] == _sample(1)


def test_duplicate_answers_are_kept_once(tmp_path):
    store = GenerationStore(tmp_path).open()
    store.add(_sample(1))
    store.add(_sample(1))
    store.close()
    assert len((tmp_path / "journal.jsonl").read_bytes().splitlines()) == 1


def test_crash_between_index_and_journal_reset_counts_each_sample_once(tmp_path):
    store = GenerationStore(tmp_path).open()
    for i in range(3):
        store.add(_sample(i))
    journal = (tmp_path / "journal.jsonl").read_bytes()
    store.seal()
    store.close()
    (tmp_path / "journal.jsonl").write_bytes(journal)  # as if killed before the journal reset
    again = GenerationStore(tmp_path).open()
    assert sorted(again.samples) == ["id0", "id1", "id2"]
    again.seal()
    again.close()
    assert sum(1 for _ in tmp_path.glob("samples-*.parquet")) == 1  # nothing sealed twice


def test_unindexed_shard_from_a_crash_is_removed(tmp_path):
    store = GenerationStore(tmp_path).open()
    store.add(_sample(0))
    store.close()
    (tmp_path / "samples-00000.parquet").write_bytes(b"renamed in, never indexed")
    again = GenerationStore(tmp_path).open()
    assert list(again.samples) == ["id0"] and not (tmp_path / "samples-00000.parquet").exists()


def test_damaged_shard_is_refused_by_name_and_repair_regenerates_only_it(tmp_path):
    store = GenerationStore(tmp_path, seal_rows=2).open()
    for i in range(5):
        store.add(_sample(i))
    store.close()  # shards 0 (id0, id1) and 1 (id2, id3); id4 in the journal
    shard = tmp_path / "samples-00001.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(
        RunDirError, match=r"samples-00001.parquet: sealed generation shard is missing or damaged"
    ):
        GenerationStore(tmp_path).open()
    repaired = GenerationStore(tmp_path, repair=True).open()
    assert sorted(repaired.samples) == ["id0", "id1", "id4"]  # id2, id3 will be asked again
    assert (tmp_path / "samples-00001.damaged").exists()
    assert GenerationStore(tmp_path).open().samples.keys() == repaired.samples.keys()


def test_failures_are_tombstones_until_a_success(tmp_path):
    store = GenerationStore(tmp_path).open()
    store.add_failure("id7", "rate_limited", "429 after 5 tries", 5)
    store.close()
    again = GenerationStore(tmp_path).open()
    assert again.failures["id7"]["error"] == "rate_limited"
    sample = _sample(7)
    again.add(sample)
    assert "id7" not in again.failures


def test_wasted_requests_are_counted_per_attempt_and_never_twice(tmp_path):
    first = GenerationStore(tmp_path).open()
    for i in range(6):
        first.mark_sent(f"id{i}")
    first.add(_sample(0))
    first.add(_sample(1))
    first.add_failure("id2", "server_error", "HTTP 500", 3)  # answered, with a tombstone
    first.close()  # "killed": id3, id4, id5 were in flight
    second = GenerationStore(tmp_path).open()
    assert (second.attempt, second.wasted) == (2, 3)
    for rid in ("id3", "id4", "id2"):  # id2 again: --retry-failed
        second.mark_sent(rid)
    second.add(_sample(3))
    second.close()  # killed again: id4 and id2 lost this time, id5 never resent
    third = GenerationStore(tmp_path).open()
    assert (third.attempt, third.wasted) == (3, 5)  # 3 from the first attempt + id4, id2
    third.close()
    # a clean attempt that stores everything it sent adds nothing
    fourth = GenerationStore(tmp_path).open()
    for i in (2, 4, 5):
        fourth.mark_sent(f"id{i}")
        fourth.add(_sample(i))
    fourth.close()
    assert GenerationStore(tmp_path).open().wasted == 5
