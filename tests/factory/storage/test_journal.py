from __future__ import annotations

import pytest

from factory.errors import RunDirError
from factory.storage.journal import Journal, read_journal


def _write(path, records):
    j = Journal(path)
    for r in records:
        j.append(r)
    j.close()


def test_roundtrip(tmp_path):
    path = tmp_path / "j.jsonl"
    records = [{"id": str(i), "text": "ünïcode \\boxed{1}\n"} for i in range(5)]
    _write(path, records)
    assert list(read_journal(path)) == records


def test_torn_last_record_at_every_byte_offset_is_dropped_exactly(tmp_path):
    path = tmp_path / "j.jsonl"
    records = [{"id": str(i), "text": "x" * i} for i in range(4)]
    _write(path, records)
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    for cut in range(last_start, len(data)):  # every offset inside the last record
        path.write_bytes(data[:cut])
        assert list(read_journal(path)) == records[:3], cut
        assert path.read_bytes() == data[:last_start]  # the torn tail was cut off
        j = Journal(path)  # and appending continues cleanly after it
        j.append(records[3])
        j.close()
        assert list(read_journal(path)) == records


def test_flipped_byte_in_the_last_record_is_a_torn_tail(tmp_path):
    path = tmp_path / "j.jsonl"
    _write(path, [{"id": "a"}, {"id": "b"}])
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    assert list(read_journal(path)) == [{"id": "a"}]


def test_damage_in_the_middle_is_refused_with_the_line(tmp_path):
    path = tmp_path / "j.jsonl"
    _write(path, [{"id": "a"}, {"id": "b"}, {"id": "c"}])
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"b"', b'"X"')
    path.write_bytes(b"".join(lines))
    with pytest.raises(RunDirError, match=r"j.jsonl:2: damaged journal record in the middle"):
        list(read_journal(path))


def test_missing_journal_is_empty(tmp_path):
    assert list(read_journal(tmp_path / "none.jsonl")) == []
