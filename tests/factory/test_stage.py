from __future__ import annotations

from factory.record import Record
from factory.stage import Drop, Filter, Stage, chain


def _records(n: int) -> list[Record]:
    return [Record(problem_id=f"p{i}", source="s", problem=f"q{i}", gold=str(i)) for i in range(n)]


class DropOdd(Filter):
    name = "drop_odd"
    batch_size = 3

    def process(self, record: Record) -> Record | Drop:
        return Drop("odd") if int(record.gold) % 2 else record


class Twice(Stage):
    name = "twice"

    def run(self, records, rank=0, world_size=1):
        for r in records:
            yield r
            yield r


def test_chain_counts_and_drops():
    drops = []
    stages = [DropOdd(), Twice()]
    stream, source = chain(
        _records(7), stages, lambda r, stage, d: drops.append((r.problem_id, stage, d.reason))
    )
    out = list(stream)
    assert [r.problem_id for r in out] == ["p0", "p0", "p2", "p2", "p4", "p4", "p6", "p6"]
    assert source.outputs == 7
    assert stages[0].stats.inputs == 7 and stages[0].stats.outputs == 4
    assert dict(stages[0].stats.drops) == {"odd": 3}
    assert stages[1].stats.inputs == 4 and stages[1].stats.outputs == 8
    assert drops == [
        ("p1", "drop_odd", "odd"),
        ("p3", "drop_odd", "odd"),
        ("p5", "drop_odd", "odd"),
    ]


def test_own_time_excludes_upstream():
    import time

    class Slow(Stage):
        name = "slow"

        def run(self, records, rank=0, world_size=1):
            for r in records:
                time.sleep(0.05)
                yield r

    class Cheap(Filter):
        name = "cheap"
        batch_size = 4

        def process(self, record):
            return record

    stages = [Slow(), Cheap()]
    stream, _ = chain(_records(4), stages, lambda *a: None)
    list(stream)
    assert stages[0].stats.seconds >= 0.2
    assert stages[1].stats.seconds < 0.05  # the batch filter waited on Slow; that is not its time
    assert stages[1].stats.inclusive >= 0.2


def test_row_serializes_meta_as_json():
    r = Record(problem_id="p", source="s", problem="q", gold="1", meta={"b": 1, "a": (1, 2)})
    assert r.row()["meta"] == '{"a": [1, 2], "b": 1}'
