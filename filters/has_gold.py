"""Drop problems that carry no gold answer: they cannot be verified (reason `no_gold`)."""

from __future__ import annotations

from factory.record import Record
from factory.stage import Drop, Filter


class HasGold(Filter):
    name = "has_gold"

    def process(self, record: Record) -> Record | Drop:
        if record.gold is None or not record.gold.strip():
            return Drop("no_gold")
        return record
