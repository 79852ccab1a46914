"""Parquet shards: rows are buffered, written as parts into staging, then published.

Parts are written with zstd into `DIR/.staging/<table>/`, fsynced, and only when the table is
complete renamed to `DIR/<table>/<prefix>-0000i-of-0000N.parquet` (N is known only then).
A table with no rows still gets one empty shard, so every reader finds the schema.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from factory.crash import crash_point
from factory.storage.atomic import publish

ROW_GROUP_ROWS = 10_000  # pyarrow's default would put a whole shard in one group


def write_parquet(table, path: Path, compression: str | None, crash_site: str) -> None:
    """Write `table` to `path` and fsync it. Row groups go out one at a time, so a crash site
    between them leaves what a real crash mid-write leaves: a file with no footer."""
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, table.schema, compression=compression) as writer:
        for start in range(0, max(table.num_rows, 1), ROW_GROUP_ROWS):
            writer.write_table(table.slice(start, ROW_GROUP_ROWS))
            crash_point(crash_site)
    with path.open("rb") as fh:
        os.fsync(fh.fileno())


def read_batches(path: Path):
    """A parquet file's rows, one row group at a time. (`ParquetFile.iter_batches` pre-buffers
    and keeps column chunks: reading a 2 GB file that way held ~2.5 KB per row read.)"""
    import pyarrow.parquet as pq

    file = pq.ParquetFile(path)
    for i in range(file.num_row_groups):
        yield from file.read_row_group(i).to_batches()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


class ShardWriter:
    def __init__(
        self,
        root: Path,
        staging: Path,
        table: str,
        prefix: str,
        schema,
        shard_rows: int,
        compression: str,
        constants: dict[str, Any] | None = None,
    ) -> None:
        self.root, self.table, self.prefix, self.schema = root, table, prefix, schema
        self.staging = staging / table
        self.staging.mkdir(parents=True, exist_ok=True)
        self.shard_rows, self.constants = shard_rows, constants or {}
        self.compression = None if compression == "none" else compression
        self.rows: list[dict[str, Any]] = []
        self.parts: list[tuple[Path, int]] = []
        self.total = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append({**row, **self.constants})
        self.total += 1
        if len(self.rows) >= self.shard_rows:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        part = self.staging / f"part-{len(self.parts):05d}.parquet"
        write_parquet(table, part, self.compression, crash_site="shard_mid_write")
        self.parts.append((part, len(self.rows)))
        self.rows = []

    def publish(self) -> list[dict[str, Any]]:
        """Rename every part into place; returns [{path, rows, sha256}] for the manifest."""
        if self.rows or not self.parts:
            self._flush()
        count = len(self.parts)
        files = []
        for i, (part, rows) in enumerate(self.parts):
            name = f"{self.prefix}-{i:05d}-of-{count:05d}.parquet"
            target = self.root / self.table / name
            digest = sha256_file(part)
            publish(part, target)
            crash_point("publish_mid_rename")
            files.append({"path": f"{self.table}/{name}", "rows": rows, "sha256": digest})
        return files
