"""Problems from a local .jsonl or .parquet file with a column mapping.

The file is scanned once before any work (`check`) so that a broken row fails the run
up front, naming its line, instead of after an hour of generation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import ProblemSourceError
from factory.problems.mapping import UniqueIds, check_columns, check_row, row_to_record
from factory.recipe import SourceConfig, data_path
from factory.record import Record

SUFFIXES = (".jsonl", ".json", ".parquet")


def _path(cfg: SourceConfig) -> Path:
    path = data_path(cfg.path or "")
    if not path.is_file():
        raise ProblemSourceError(f"problem file not found: {path} (source.path)")
    if path.suffix not in SUFFIXES:
        raise ProblemSourceError(
            f"{path}: unsupported problem file type '{path.suffix}' (use {', '.join(SUFFIXES)})"
        )
    return path


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number or row index, row) pairs; malformed JSON raises with the line number."""
    if path.suffix == ".parquet":
        from factory.storage.shards import read_batches

        try:
            index = 0
            for batch in read_batches(path):
                for row in batch.to_pylist():
                    yield index, row
                    index += 1
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise ProblemSourceError(f"{path}: not a readable parquet file ({exc})") from None
        return
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ProblemSourceError(
                    f"{path}:{lineno}: not a valid JSON object ({exc}); fix or remove that line"
                ) from None
            if not isinstance(row, dict):
                raise ProblemSourceError(f"{path}:{lineno}: expected a JSON object per line")
            if b"\\ud" in raw.lower():  # a \uD800-\uDFFF escape: check it is a proper pair
                try:
                    json.dumps(row, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise ProblemSourceError(
                        f"{path}:{lineno}: a \\uD800-\\uDFFF escape without its pair (not "
                        "valid Unicode text); fix or remove that line"
                    ) from None
            yield lineno, row


def check(cfg: SourceConfig) -> int:
    """Read the whole file (up to `limit`) once; return the row count or raise a clear error."""
    path = _path(cfg)
    count = 0
    ids = UniqueIds(cfg)
    for where, row in _rows(path):
        if count == 0:
            check_columns(cfg, str(path), list(row))
        check_row(cfg, f"{path}:{where}", row)
        ids.check(f"{path}:{where}", row)
        count += 1
        if cfg.limit is not None and count >= cfg.limit:
            break
    return count


def read(cfg: SourceConfig) -> Iterator[Record]:
    path = _path(cfg)
    label = cfg.label or path.stem
    for index, (_, row) in enumerate(_rows(path)):
        if cfg.limit is not None and index >= cfg.limit:
            return
        yield row_to_record(cfg, label, index, row)
