"""The run directory: one lock, a staging area outside the published folders, a manifest.

    DIR/
      manifest.json          written last, atomically: counts, recipe, fingerprints, files
      data/train-00000-of-0000N.parquet      kept traces (what `datasets` loads)
      rejects/rejects-00000-of-0000N.parquet every dropped item with stage and drop_reason
      problems/problems-00000-of-0000N.parquet every loaded problem
      .staging/              parts being written; never inside data/ (readers glob there)
      .lock                  held while a run writes here

A directory that already holds a manifest is a finished run and is never overwritten.
"""

from __future__ import annotations

import fcntl
import json
import shutil
from pathlib import Path
from typing import Any

from factory.errors import LockError, RunDirError
from factory.storage.atomic import write_json

MANIFEST = "manifest.json"
MARKER = ".factory-run"  # says "this folder is ours", so a crashed attempt may be cleaned
TABLES = ("data", "rejects", "problems")


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.staging = self.path / ".staging"
        self._lock_fh = None

    def __enter__(self) -> RunDir:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        if self.path.exists() and any(self.path.iterdir()) and not (self.path / MARKER).exists():
            raise RunDirError(
                f"{self.path} is not empty and is not a factory run directory; "
                "choose a new or empty --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / MARKER).touch()
        fh = (self.path / ".lock").open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise LockError(
                f"{self.path} is in use by another factory run; wait for it or choose another --out"
            ) from None
        self._lock_fh = fh
        if (self.path / MANIFEST).exists():
            self.close()
            raise RunDirError(
                f"{self.path} already holds a finished run (manifest.json); choose another --out"
            )
        # no manifest: anything here is the unfinished output of a crashed attempt at this run
        for leftover in (self.staging, *(self.path / t for t in TABLES)):
            shutil.rmtree(leftover, ignore_errors=True)
        self.staging.mkdir()

    def close(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def finish(self, manifest: dict[str, Any]) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        write_json(self.path / MANIFEST, manifest)


def read_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise RunDirError(f"{path} has no {MANIFEST}: not a finished factory run directory")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{file} is not valid JSON ({exc})") from None
