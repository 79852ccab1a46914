"""The run directory: one lock, resumable generations, versioned tables, a manifest.

    DIR/
      manifest.json          written last, atomically: counts, recipe, fingerprints, files
      data -> .versions/<run id>/data          kept traces: data/train-0000i-of-0000N.parquet
      rejects -> .versions/<run id>/rejects    every dropped item with stage and drop_reason
      problems -> .versions/<run id>/problems  every loaded problem
      generations/<generation fingerprint>/    every teacher sample, journaled then sealed
      .versions/<run id>/    the published tables of one run of the downstream stages
      .staging/              parts being written; never inside a published folder
      .lock, .factory-run    held while a run writes here; "this folder is factory's"

The tables are symlinks swapped by atomic rename, so a reader of `DIR/data` sees the previous
version or the new one, never a mix. Rerunning after a crash resumes from `generations/`;
rerunning with other filter settings reuses the samples and publishes a new version.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from factory.errors import LockError, RunDirError
from factory.storage.atomic import fsync_dir, write_json

MANIFEST = "manifest.json"
MARKER = ".factory-run"  # says "this folder is ours", so a crashed attempt may be cleaned
TABLES = ("data", "rejects", "problems")


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.staging = self.path / ".staging"
        self.versions = self.path / ".versions"
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
        shutil.rmtree(self.staging, ignore_errors=True)  # parts of a crashed attempt
        self.staging.mkdir()
        self._drop_unpublished_versions()

    def close(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.path) if (self.path / MANIFEST).exists() else None

    def version_dir(self, run_id: str) -> Path:
        return self.versions / run_id

    def publish(self, run_id: str, manifest: dict[str, Any]) -> None:
        """Point the tables at version `run_id` (atomic per table), then seal the manifest."""
        for table in TABLES:
            link = self.path / table
            tmp = self.path / f".{table}.link"
            tmp.unlink(missing_ok=True)
            os.symlink(Path(".versions") / run_id / table, tmp)
            if link.exists() and not link.is_symlink():
                shutil.rmtree(link)  # a plain folder from an older layout
            os.replace(tmp, link)
        fsync_dir(self.path)
        shutil.rmtree(self.staging, ignore_errors=True)
        write_json(self.path / MANIFEST, manifest)
        self._drop_unpublished_versions()

    def _drop_unpublished_versions(self) -> None:
        """Remove versions no table points at (older runs, or a crash before the swap)."""
        if not self.versions.exists():
            return
        live = {
            os.readlink(self.path / t).split("/")[1] for t in TABLES if (self.path / t).is_symlink()
        }
        for version in self.versions.iterdir():
            if version.name not in live:
                shutil.rmtree(version, ignore_errors=True)


def read_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise RunDirError(f"{path} has no {MANIFEST}: not a finished factory run directory")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{file} is not valid JSON ({exc})") from None
