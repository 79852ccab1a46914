"""The generation store: every teacher sample of one generation fingerprint, exactly once.

    DIR/generations/<generation fingerprint>/
      index.json              sealed shards with row counts and sha256 (written atomically)
      samples-00000.parquet   sealed samples
      journal.jsonl           samples since the last seal, appended as they arrive
      failures.jsonl          tombstones: requests whose retries ran out (a later success wins)
      dispatch.jsonl          each attempt's number, then every id handed to the teacher in it

A sample is keyed by its id (problem, sample index, generation fingerprint), so a resumed run
asks the teacher only for ids it does not hold. Sealing writes the journal's samples to a
parquet file in staging, fsyncs it, renames it into place, records it in the index, and only
then empties the journal: a crash at any point leaves either the journal or the index holding
each sample (both at worst, which loading resolves by id). A sealed shard whose sha256 no longer
matches is refused by name; `repair=True` sets it aside so that only its ids are regenerated.

Wasted requests: an id handed to the teacher (in flight, or queued in its client) in an attempt
that ended — crash, signal, budget — before its result was stored is asked again later; the
dispatch log lets `open` count those (`wasted`) across every earlier attempt. An id counts as
wasted in attempt a if it was sent in a, no tombstone was written for it in a, and it was
either sent again later or still has no sample.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from factory.crash import crash_point
from factory.errors import RunDirError
from factory.record import Record, arrow_schema
from factory.storage.atomic import publish, write_json
from factory.storage.journal import Journal, read_journal
from factory.storage.shards import sha256_file, write_parquet

log = logging.getLogger(__name__)


class GenerationStore:
    def __init__(self, root: Path, seal_rows: int = 5000, repair: bool = False) -> None:
        self.root = Path(root)
        self.seal_rows, self.repair = seal_rows, repair
        self.samples: dict[str, Record] = {}
        self.failures: dict[str, dict[str, Any]] = {}
        self._unsealed: list[Record] = []
        self._journal: Journal | None = None
        self._failures: Journal | None = None
        self._dispatch: Journal | None = None
        self.attempt = 1  # this open's number among the attempts at this generation
        self.wasted = 0  # ids handed to the teacher in earlier attempts whose result was lost

    # ---- open: sealed shards, then the journal, then tombstones --------------------------
    def open(self) -> GenerationStore:
        self.root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root / ".staging", ignore_errors=True)
        index = self._index()
        listed = {s["path"] for s in index["shards"]}
        for stray in self.root.glob("samples-*.parquet"):
            if (
                stray.name not in listed
            ):  # renamed in but never indexed: its rows are in the journal
                stray.unlink()
        for shard in list(index["shards"]):
            self._load_shard(shard, index)
        for obj in read_journal(self.root / "journal.jsonl"):
            record = Record.from_row(obj)
            if record.id not in self.samples:
                self.samples[record.id] = record
                self._unsealed.append(record)
        failed_in: set[tuple[str, int]] = set()
        for obj in read_journal(self.root / "failures.jsonl"):
            self.failures[obj["id"]] = obj
            failed_in.add((obj["id"], obj.get("attempt", 0)))
        self._count_wasted(failed_in)
        self._journal = Journal(self.root / "journal.jsonl")
        self._failures = Journal(self.root / "failures.jsonl", sync_every=1)
        self._dispatch = Journal(self.root / "dispatch.jsonl")
        self._dispatch.append({"attempt": self.attempt})
        self._dispatch.sync()  # the attempt's number must not be reused after a power cut
        return self

    def _count_wasted(self, failed_in: set[tuple[str, int]]) -> None:
        sent: list[tuple[str, int]] = []
        last_sent: dict[str, int] = {}
        attempt = 0
        for obj in read_journal(self.root / "dispatch.jsonl"):
            if "attempt" in obj:
                attempt = obj["attempt"]
            else:
                sent.append((obj["sent"], attempt))
                last_sent[obj["sent"]] = attempt
        self.attempt = attempt + 1
        self.wasted = sum(
            1
            for rid, a in sent
            if (rid, a) not in failed_in and (last_sent[rid] > a or rid not in self.samples)
        )

    def _index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        if not path.exists():
            return {"shards": []}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise RunDirError(
                f"{path} is not valid JSON ({exc}); it was not written by factory"
            ) from None

    def _load_shard(self, shard: dict[str, Any], index: dict[str, Any]) -> None:
        import pyarrow.parquet as pq

        path = self.root / shard["path"]
        if not path.is_file() or sha256_file(path) != shard["sha256"]:
            if not self.repair:
                raise RunDirError(
                    f"{path}: sealed generation shard is missing or damaged (sha256 mismatch); "
                    "rerun with --repair to regenerate only its samples"
                )
            log.warning(
                "repair: setting %s aside; its %d samples will be regenerated", path, shard["rows"]
            )
            if path.exists():
                path.rename(path.with_suffix(".damaged"))
            index["shards"].remove(shard)
            write_json(self.root / "index.json", index)
            return
        for row in pq.read_table(path).to_pylist():
            self.samples.setdefault(row["id"], Record.from_row(row))

    # ---- writing ------------------------------------------------------------------------
    def add(self, record: Record) -> None:
        assert self._journal is not None, "open() first"
        if record.id in self.samples:  # exactly once: a duplicate answer is ignored
            return
        self._journal.append(record.row())
        self.samples[record.id] = record
        self._unsealed.append(record)
        self.failures.pop(record.id, None)
        if len(self._unsealed) >= self.seal_rows:
            self.seal()

    def mark_sent(self, request_id: str) -> None:
        """`request_id` is handed to the teacher now (see `wasted`)."""
        assert self._dispatch is not None, "open() first"
        self._dispatch.append({"sent": request_id})

    def add_failure(self, request_id: str, error: str, detail: str, attempts: int) -> None:
        assert self._failures is not None, "open() first"
        entry = {
            "id": request_id,
            "error": error,
            "detail": detail[:500],
            "attempts": attempts,
            "attempt": self.attempt,
        }
        self._failures.append(entry)
        self.failures[request_id] = entry

    def seal(self) -> None:
        """Move the journal's samples into a sealed parquet shard."""
        import pyarrow as pa

        if not self._unsealed:
            return
        index = self._index()
        name = f"samples-{len(index['shards']):05d}.parquet"
        staging = self.root / ".staging"
        staging.mkdir(exist_ok=True)
        part = staging / name
        table = pa.Table.from_pylist([r.row() for r in self._unsealed], schema=_sample_schema())
        write_parquet(table, part, "zstd", crash_site="seal_mid_write")
        digest = sha256_file(part)
        crash_point("seal_before_rename")
        publish(part, self.root / name)
        staging.rmdir()
        crash_point("seal_before_index")
        index["shards"].append({"path": name, "rows": len(self._unsealed), "sha256": digest})
        write_json(self.root / "index.json", index)
        crash_point("seal_before_journal_reset")
        assert self._journal is not None
        self._journal.close()
        (self.root / "journal.jsonl").write_bytes(b"")  # sealed: the journal starts over
        self._journal = Journal(self.root / "journal.jsonl")
        self._unsealed = []

    def close(self) -> None:
        for journal in (self._journal, self._failures, self._dispatch):
            if journal is not None:
                journal.close()


def _sample_schema():
    import pyarrow as pa

    schema = arrow_schema()
    return pa.schema([f for f in schema if f.name in Record.__dataclass_fields__])
