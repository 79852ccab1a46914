"""A barrier stage's holding area: records written to a temporary parquet file as they arrive
and replayed in arrival order once the stage has decided what to do with them.

Selection and majority voting must see every sample of a problem before they can keep any,
and a run can hold far more samples than fit in memory; the stage keeps only small per-sample
facts (id, answer, length) in memory and the records here. Row groups of `batch` records keep
writing cheap and replay bounded in memory (one row group at a time, see `read_batches`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from factory.record import Record, arrow_schema
from factory.storage.shards import read_batches


class Spill:
    def __init__(self, workdir: Path | None, prefix: str, batch: int = 2048) -> None:
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=workdir))
        self.path = self.dir / "records.parquet"
        self.batch, self.count = batch, 0
        self._pending: list[dict] = []
        self._writer = None

    def add(self, record: Record) -> int:
        """Hold `record`; returns its position in arrival order."""
        self._pending.append(record.row())
        self.count += 1
        if len(self._pending) >= self.batch:
            self._flush()
        return self.count - 1

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._pending:
            return
        schema = arrow_schema()
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, schema, compression="lz4")
        self._writer.write_table(pa.Table.from_pylist(self._pending, schema))
        self._pending = []

    def replay(self) -> Iterator[Record]:
        """Every record added, in arrival order (call once, after the last `add`)."""
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            for batch in read_batches(self.path):
                for values in batch.to_pylist():
                    yield Record.from_row(values)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        shutil.rmtree(self.dir, ignore_errors=True)
