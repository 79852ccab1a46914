"""An append-only journal of JSON records that survives `kill -9` at any byte.

Each line is `<crc32 hex> <json>\\n`, handed to the OS with one unbuffered write as it is
appended, so a killed process loses nothing it has appended (a buffer would hold the last
results of a burst for as long as the next one takes: minutes with a slow teacher). A write
costs a few microseconds, nothing next to a generation; `fsync` runs every `sync_every`
records and on close, for machine crashes. On open, a torn or corrupt *last* line (no newline,
bad JSON or bad checksum) is the trace of a crash and is cut off; damage anywhere else is not a
crash and is refused with the file and line, since silently skipping it would lose data.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import RunDirError


def _encode(obj: dict[str, Any]) -> bytes:
    payload = json.dumps(
        obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str
    )
    data = payload.encode()
    return b"%08x %s\n" % (zlib.crc32(data), data)


def _decode(line: bytes) -> dict[str, Any] | None:
    """The record in a complete line, or None if the line is damaged."""
    if not line.endswith(b"\n") or len(line) < 10 or line[8:9] != b" ":
        return None
    data = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(data):
            return None
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def read_journal(path: Path, repair: bool = True) -> Iterator[dict[str, Any]]:
    """Every intact record; a torn last line is truncated away (when `repair`)."""
    if not path.exists():
        return
    good_end = 0
    with path.open("rb") as fh:
        lines = fh.readlines()
    for lineno, line in enumerate(lines, start=1):
        obj = _decode(line)
        if obj is None:
            if lineno == len(lines):  # the crash point: drop the torn tail
                if repair:
                    with path.open("r+b") as fh:
                        fh.truncate(good_end)
                return
            raise RunDirError(
                f"{path}:{lineno}: damaged journal record in the middle of the file "
                "(not a crash artifact); move the file away to regenerate its samples"
            )
        good_end += len(line)
        yield obj


class Journal:
    def __init__(self, path: Path, sync_every: int = 256) -> None:
        self.path = path
        self.sync_every = sync_every
        self._fh = path.open("ab", buffering=0)  # each record is one write(2), nothing buffered
        self._pending = 0

    def append(self, obj: dict[str, Any]) -> None:
        self._fh.write(_encode(obj))  # in the OS page cache now: a killed process loses nothing
        self._pending += 1
        if self._pending >= self.sync_every:
            self.sync()

    def sync(self) -> None:
        os.fsync(self._fh.fileno())
        self._pending = 0

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()
