"""Problem sources: where the questions and their gold answers come from.

`SOURCES` is the one visible name → module mapping; each module offers `check(cfg)` (read
everything once and fail fast with a clear error) and `read(cfg)` (stream records).
"""

from __future__ import annotations

from collections.abc import Iterator

from factory.problems import files, hub, humaneval, procedural
from factory.recipe import SourceConfig
from factory.record import Record

SOURCES = {"file": files, "hub": hub, "procedural": procedural, "humaneval": humaneval}


def check_source(cfg: SourceConfig) -> int:
    return SOURCES[cfg.kind].check(cfg)


def load_problems(cfg: SourceConfig, rank: int = 0, world_size: int = 1) -> Iterator[Record]:
    """This shard's problems: row i belongs to rank i % world_size."""
    for i, record in enumerate(SOURCES[cfg.kind].read(cfg)):
        if i % world_size == rank:
            yield record
