"""The run directory: one lock, resumable generations, versioned tables, a manifest.

    DIR/
      manifest.json -> .current/manifest.json  counts, recipe, fingerprints, files
      data -> .current/data          kept traces: data/train-0000i-of-0000N.parquet
      rejects -> .current/rejects    every dropped item with stage and drop_reason
      problems -> .current/problems  every loaded problem
      .current -> .versions/<run id> the published version: swapped by one atomic rename
      .versions/<run id>/            one run of the downstream stages: its tables + manifest
      generations/<generation fingerprint>/    every teacher sample, journaled then sealed
      .staging/              parts being written; never inside a published folder
      .lock, .factory-run    held while a run writes here; "this folder is factory's"

A version is complete (every shard renamed in, its manifest written last) before it is made
current, and making it current is one rename of one symlink, so a reader — or a crash at any
instruction — sees the previous version or the new one, never a mix of tables or a manifest
that does not describe them. A reader that reads several files resolves `.current` once
(`current_version`). Rerunning after a crash resumes from `generations/`; rerunning with other
filter settings reuses the samples and publishes a new version.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from factory.crash import crash_point
from factory.errors import LockError, RunDirError
from factory.storage.atomic import fsync_dir, write_json

MANIFEST = "manifest.json"
MARKER = ".factory-run"  # says "this folder is ours", so a crashed attempt may be cleaned
TABLES = ("data", "rejects", "problems")
CURRENT = ".current"


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
            shutil.rmtree(self.staging, ignore_errors=True)  # nothing in it outlives the run
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.path) if (self.path / MANIFEST).exists() else None

    def version_dir(self, run_id: str) -> Path:
        return self.versions / run_id

    def publish(self, run_id: str, manifest: dict[str, Any]) -> None:
        """Seal version `run_id` with its manifest, then make it current in one rename."""
        version = self.version_dir(run_id)
        write_json(version / MANIFEST, manifest)
        fsync_dir(version)
        crash_point("publish_before_swap")
        _link(self.path / CURRENT, Path(".versions") / run_id)
        crash_point("publish_after_swap")
        for name in (*TABLES, MANIFEST):  # fixed links into .current (made once; after the
            _link(self.path / name, Path(CURRENT) / name)  # swap, so an older layout's stay valid)
        shutil.rmtree(self.staging, ignore_errors=True)
        self._drop_unpublished_versions()

    def _drop_unpublished_versions(self) -> None:
        """Remove versions that are not current (older runs, or a crash before the swap)."""
        if not self.versions.exists():
            return
        live = {current_version(self.path)}
        for table in TABLES:  # an older layout linked each table straight into its version
            link = self.path / table
            if link.is_symlink() and Path(os.readlink(link)).parts[:1] == (".versions",):
                live.add(self.versions / Path(os.readlink(link)).parts[1])
        for version in self.versions.iterdir():
            if version not in live:
                shutil.rmtree(version, ignore_errors=True)


def _link(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically (a new symlink renamed over the old entry)."""
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)  # a plain folder from an older layout
    tmp = link.with_name(f".{link.name}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def current_version(path: Path) -> Path | None:
    """The folder of the published version (resolved once), or None before the first publish."""
    current = Path(path) / CURRENT
    if not current.is_symlink():
        return None
    return Path(path) / ".versions" / Path(os.readlink(current)).name


def read_manifest(path: Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise RunDirError(f"{path} has no {MANIFEST}: not a finished factory run directory")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunDirError(f"{file} is not valid JSON ({exc})") from None
