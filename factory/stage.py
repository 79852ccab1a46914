"""Stages: small steps that take an iterator of records and yield records, one way.

A pipeline is a plain list of stages chained as generators (datatrove's shape). Counting is
done here, once: every stage reports records in, records out, drops by reason and the time
spent in its own code, and these merge into the run's funnel. A concrete `Filter` only
answers one question per record — keep it (possibly with fields filled in) or `Drop` it with a
reason code — and never raises on bad model output.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from factory.record import Record


@dataclass(frozen=True, slots=True)
class Drop:
    reason: str  # a short code, e.g. "wrong_answer", "truncated", "duplicate_near"
    cluster: str | None = None  # for duplicates: the id of the record that was kept


@dataclass
class StageStats:
    name: str
    inputs: int = 0
    outputs: int = 0
    drops: Counter = field(default_factory=Counter)
    seconds: float = 0.0  # time in this stage's own code (upstream time subtracted)
    inclusive: float = 0.0  # time spent producing its outputs, upstream included

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "drops": dict(sorted(self.drops.items())),
            "seconds": round(self.seconds, 3),
        }


RejectFn = Callable[[Record, str, Drop], None]


class Stage(ABC):
    """Base of every step. Subclasses implement `run`; `rank`/`world_size` let a distributed
    engine (e.g. Ray) drive the same code on shards of the input."""

    name = "stage"

    def __init__(self) -> None:
        self.stats = StageStats(self.name)
        self.on_drop: RejectFn = lambda record, stage, drop: None

    @abstractmethod
    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        """Consume `records`, yield the records that go on."""

    def drop(self, record: Record, drop: Drop) -> None:
        self.stats.drops[drop.reason] += 1
        self.on_drop(record, self.name, drop)

    def close(self) -> None:  # noqa: B027 - optional hook, most stages hold nothing
        """Release resources (worker processes, models); called once the stream is done."""


class Filter(Stage):
    """Keep-or-drop step. Override `process` (one record) or `process_batch` (to parallelize)."""

    batch_size = 1

    @abstractmethod
    def process(self, record: Record) -> Record | Drop:
        """The record to keep (fields may be filled in), or a Drop with its reason."""

    def process_batch(self, records: list[Record]) -> list[Record | Drop]:
        return [self.process(r) for r in records]

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        it = iter(records)
        while batch := list(islice(it, self.batch_size)):
            for record, result in zip(batch, self.process_batch(batch), strict=True):
                if isinstance(result, Drop):
                    self.drop(record, result)
                else:
                    yield result


def chain(
    source: Iterable[Record],
    stages: list[Stage],
    on_drop: RejectFn,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[Iterator[Record], StageStats]:
    """Connect `source` through `stages`; returns the final stream and the source's stats.

    Each link is wrapped so that counts and exclusive times are recorded as records pass.
    """
    source_stats = StageStats("problems")
    stream = _timed(source, source_stats, upstream=None)
    upstream = source_stats
    for stage in stages:
        stage.on_drop = on_drop
        stream = _timed(
            stage.run(_counted(stream, stage.stats), rank, world_size), stage.stats, upstream
        )
        upstream = stage.stats
    return stream, source_stats


def _counted(records: Iterable[Record], stats: StageStats) -> Iterator[Record]:
    for record in records:
        stats.inputs += 1
        yield record


def _timed(
    records: Iterable[Record], stats: StageStats, upstream: StageStats | None
) -> Iterator[Record]:
    """Count outputs and time spent in `next()`; own time = that minus the upstream's share."""
    it = iter(records)
    while True:
        up_before = upstream.inclusive if upstream else 0.0
        t0 = time.perf_counter()
        try:
            record = next(it)
        except StopIteration:
            record = None
        elapsed = time.perf_counter() - t0
        stats.inclusive += elapsed
        stats.seconds += elapsed - ((upstream.inclusive if upstream else 0.0) - up_before)
        if record is None:
            return
        stats.outputs += 1
        yield record
