"""Exact duplicates by a hash of normalized text (NFKC, case-folded, whitespace collapsed).

Streaming: the first record with a given text is kept and becomes its cluster's id; later
copies are dropped (`duplicate_exact`) carrying that id in `dedup_cluster`.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from factory.recipe import DedupLevel
from factory.record import Record
from factory.stage import Drop, Filter

_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def dedup_text(record: Record, fields: list[str]) -> str:
    return "\n".join(getattr(record, f) or "" for f in fields)


def record_key(record: Record) -> str:
    """The record's identity for clustering: its sample id, or its problem id before sampling."""
    return record.id or record.problem_id


class ExactDedup(Filter):
    def __init__(self, cfg: DedupLevel, level: str) -> None:
        self.name = f"dedup_{level}_exact"
        super().__init__()
        self.cfg = cfg
        self.seen: dict[bytes, str] = {}

    def process(self, record: Record) -> Record | Drop:
        digest = hashlib.blake2b(
            normalize(dedup_text(record, self.cfg.fields)).encode(), digest_size=16
        )
        key = digest.digest()
        first = self.seen.get(key)
        if first is not None:
            return Drop("duplicate_exact", cluster=first)
        self.seen[key] = record_key(record)
        record.dedup_cluster = record.dedup_cluster or record_key(record)
        return record
