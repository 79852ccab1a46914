"""Exact and near-duplicate removal at one level (problems or traces), over the whole input.

A barrier stage: which member of a cluster survives depends on all of them, so the stage
reads its whole input before it yields anything, with memory bounded by spilling:

1. records are written to a temporary parquet file as they arrive; each batch's texts go to
   worker processes (filters/dedup_signatures.py) that return exact keys, MinHash
   signatures (appended to a file read back as a memory map) and LSH band keys (spilled to
   parquet, one file per batch);
2. DuckDB groups band keys into buckets; pairs in a bucket whose signatures agree on at least
   `threshold` of the positions are confirmed (filters/dedup_clusters.py), equal exact keys
   are linked, and union-find turns the links into clusters;
3. one member survives each cluster by policy (`prefer_verified`, then `keep`: first by id,
   shortest or longest text, ties by id) and the spilled records are replayed in their
   arrival order: survivors go on, the rest are dropped as `duplicate_exact` (same normalized
   text as the survivor) or `duplicate_near`. Every row gets `dedup_cluster` = the
   survivor's id.

Nothing depends on arrival order (buckets are sorted by id, survivors tie-break by id), so a
resumed run, whose samples arrive in another order, keeps the same set.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from factory.errors import FactoryError
from factory.recipe import DedupConfig, DedupLevel
from factory.record import Record, arrow_schema
from factory.stage import Drop, Stage
from factory.storage.shards import read_batches
from filters.dedup_signatures import blake64

log = logging.getLogger(__name__)


def dedup_text(record: Record, fields: list[str]) -> str:
    return "\n".join(getattr(record, f) or "" for f in fields)


def record_key(record: Record) -> str:
    """The record's identity for clustering: its sample id, or its problem id before sampling."""
    return record.id or record.problem_id


class Dedup(Stage):
    def __init__(
        self, cfg: DedupLevel, level: str, pool: DedupConfig, workdir: Path | None = None
    ) -> None:
        self.name = f"dedup_{level}"
        super().__init__()
        self.cfg, self.pool_cfg, self.workdir = cfg, pool, workdir
        if cfg.near:
            from filters.text_kernels import lsh_params

            self.bands, self.rows = (
                (cfg.bands, cfg.rows)
                if cfg.bands is not None and cfg.rows is not None
                else lsh_params(cfg.threshold, cfg.num_perm)
            )
        else:
            self.bands, self.rows = 0, 0
        self._pool = None
        self.summary: dict[str, Any] = {}

    # ---- 1. spill and sketch ------------------------------------------------------------
    def _sketch(self, batches: list[list[str]]) -> list[tuple[np.ndarray, ...]]:
        cfg = self.cfg
        args = (tuple(cfg.normalize), cfg.shingle, cfg.num_perm, cfg.seed, self.bands, self.rows)
        if self.pool_cfg.workers and (self._pool is not None or len(batches) > 1):
            if self._pool is None:
                from filters.worker_pool import WorkerPool

                self._pool = WorkerPool(
                    "filters.dedup_signatures.sketch", self.pool_cfg.workers, timeout_s=3600
                )
            results = self._pool.map([(texts, *args) for texts in batches])
            if any(not isinstance(r, tuple) for r in results):
                raise FactoryError(
                    f"{self.name}: a signature worker died (out of memory?); lower "
                    "dedup.batch or dedup.workers and rerun (generated samples are kept)"
                )
            return results
        from filters.dedup_signatures import sketch

        return [sketch(texts, *args) for texts in batches]

    def _spill(self, records: Iterable[Record], work: Path) -> dict[str, Any]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = arrow_schema()
        writer = pq.ParquetWriter(work / "records.parquet", schema, compression="lz4")
        ids: list = []  # pyarrow string arrays, one per batch: ~24 bytes per id
        count = 0
        exact: list[np.ndarray] = []
        unverified: list[np.ndarray] = []
        length: list[np.ndarray] = []
        it, size = iter(records), self.pool_cfg.batch
        group = max(1, self.pool_cfg.workers)
        sig_file = (work / "signatures.u32").open("wb")
        try:
            while True:
                batches = [b for b in (list(islice(it, size)) for _ in range(group)) if b]
                if not batches:
                    break
                texts = [[dedup_text(r, self.cfg.fields) for r in b] for b in batches]
                results = self._sketch(texts)
                for batch, batch_texts, (ex, sig, keys) in zip(
                    batches, texts, results, strict=True
                ):
                    first = count
                    count += len(batch)
                    writer.write_table(pa.Table.from_pylist([r.row() for r in batch], schema))
                    ids.append(pa.array([record_key(r) for r in batch], pa.large_string()))
                    unverified.append(np.array([r.verdict != "pass" for r in batch], dtype=bool))
                    length.append(np.array([len(t) for t in batch_texts], dtype=np.int64))
                    if self.cfg.scope == "problem":
                        mix = np.array([blake64(r.problem_id.encode()) for r in batch], np.int64)
                        ex = ex ^ mix
                        keys = keys ^ mix.view(np.uint64)[:, None]
                    exact.append(ex)
                    sig_file.write(np.ascontiguousarray(sig).tobytes())
                    if self.bands:
                        _write_bands(work / f"bands-{first:012d}.parquet", first, keys)
        finally:
            writer.close()
            sig_file.close()
        return {
            "ids": pa.chunked_array(ids, pa.large_string()).combine_chunks(),
            "exact": np.concatenate(exact) if exact else np.empty(0, np.int64),
            "unverified": np.concatenate(unverified) if unverified else np.zeros(0, bool),
            "length": np.concatenate(length) if length else np.zeros(0, np.int64),
        }

    # ---- 2. cluster ---------------------------------------------------------------------
    def _clusters(self, rows: dict[str, Any], work: Path) -> np.ndarray:
        from filters.dedup_clusters import (
            WINDOW,
            confirmed_pairs,
            equal_key_pairs,
            survivors,
            union_find,
        )

        n = len(rows["ids"])
        rank = np.empty(n, dtype=np.int64)
        rank[_argsort_strings(rows["ids"])] = np.arange(n)
        lefts, rights = [], []
        if self.cfg.exact:
            left, right = equal_key_pairs(rows["exact"])
            lefts.append(left)
            rights.append(right)
        if self.cfg.near and n > 1:
            members, offsets = self._buckets(work)
            sig = np.memmap(work / "signatures.u32", dtype=np.uint32, mode="r")
            sig = sig.reshape(n, self.cfg.num_perm)
            min_equal = int(np.ceil(self.cfg.threshold * self.cfg.num_perm - 1e-9))
            left, right, compared = confirmed_pairs(members, offsets, rank, sig, min_equal, WINDOW)
            self.summary.update(buckets=len(offsets) - 1, pairs_compared=int(compared))
            self.summary["pairs_confirmed"] = len(left)
            lefts.append(left)
            rights.append(right)
        component = union_find(
            n,
            np.concatenate(lefts) if lefts else np.empty(0, np.int64),
            np.concatenate(rights) if rights else np.empty(0, np.int64),
        )
        keep = self.cfg.keep
        length = {"first": np.zeros(n, np.int64), "shortest": rows["length"]}.get(
            keep, -rows["length"]
        )
        unverified = rows["unverified"] if self.cfg.prefer_verified else np.zeros(n, bool)
        return survivors(component, unverified, length, rank)

    def _buckets(self, work: Path) -> tuple[np.ndarray, np.ndarray]:
        """Rows sharing a band key, grouped by DuckDB (which spills to disk past its limit)."""
        import duckdb

        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit = '{self.pool_cfg.memory_mb}MB'")
            con.execute(f"SET temp_directory = '{work / 'duckdb'}'")
            con.execute("SET preserve_insertion_order = false")
            table = con.sql(
                "SELECT list(row) AS rows FROM read_parquet($files) GROUP BY key "
                "HAVING count(*) > 1",
                params={"files": str(work / "bands-*.parquet")},
            ).to_arrow_table()
        finally:
            con.close()
        if table.num_rows == 0:
            return np.empty(0, np.int64), np.zeros(1, np.int64)
        column = table.column("rows").combine_chunks()
        offsets = np.asarray(column.offsets, dtype=np.int64)
        return np.asarray(column.flatten(), dtype=np.int64), offsets - offsets[0]

    # ---- 3. replay ----------------------------------------------------------------------
    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        base = self.workdir / self.name if self.workdir else None
        if base is not None:
            shutil.rmtree(base, ignore_errors=True)  # left by an interrupted run
            base.mkdir(parents=True)
        work = Path(tempfile.mkdtemp(prefix=f"{self.name}-", dir=base))
        try:
            t0 = time.perf_counter()
            rows = self._spill(records, work)
            self.close()
            t1 = time.perf_counter()
            n = len(rows["ids"])
            winner = self._clusters(rows, work) if n else np.empty(0, np.int64)
            t2 = time.perf_counter()
            self._summarize(rows, winner, t1 - t0, t2 - t1)
            yield from self._replay(work, rows, winner)
        finally:
            shutil.rmtree(base or work, ignore_errors=True)

    def _replay(self, work: Path, rows: dict[str, Any], winner: np.ndarray) -> Iterator[Record]:
        ids, exact = rows["ids"], rows["exact"]
        row = 0
        for batch in read_batches(work / "records.parquet"):
            winners = winner[row : row + batch.num_rows]
            names = ids.take(winners).to_pylist()  # the survivors' ids, as cluster names
            for values, survivor, name in zip(batch.to_pylist(), winners, names, strict=True):
                record = Record.from_row(values)
                record.dedup_cluster = name
                if survivor == row:
                    yield record
                elif self.cfg.exact and exact[survivor] == exact[row]:
                    self.drop(record, Drop("duplicate_exact", cluster=name))
                else:
                    self.drop(record, Drop("duplicate_near", cluster=name))
                row += 1

    def _summarize(
        self, rows: dict[str, Any], winner: np.ndarray, sketch_s: float, cluster_s: float
    ) -> None:
        sizes = np.bincount(winner) if len(winner) else np.zeros(0, np.int64)
        sizes = sizes[sizes > 0]
        size_values, size_counts = np.unique(sizes, return_counts=True)
        self.summary.update(
            rows=len(rows["ids"]),
            clusters=len(sizes),
            duplicates=int(len(winner) - len(sizes)),
            largest_cluster=int(sizes.max()) if len(sizes) else 0,
            cluster_sizes={str(k): int(v) for k, v in zip(size_values, size_counts, strict=True)},
            bands=self.bands,
            rows_per_band=self.rows,
            threshold=self.cfg.threshold,
            num_perm=self.cfg.num_perm,
            shingle=self.cfg.shingle,
            seconds={"sketch": round(sketch_s, 3), "cluster": round(cluster_s, 3)},
        )

    def report(self) -> dict[str, Any]:
        return {**self.summary, "drops": dict(self.stats.drops)}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _write_bands(path: Path, first: int, keys: np.ndarray) -> None:
    """(row, key) per band; the band number is mixed into the key (text_kernels.band_keys)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, bands = keys.shape
    table = pa.table(
        {
            "row": np.repeat(np.arange(first, first + n, dtype=np.int64), bands),
            "key": keys.reshape(-1).view(np.int64),
        }
    )
    pq.write_table(table, path, compression="none")


def _argsort_strings(values) -> np.ndarray:
    import pyarrow.compute as pc

    return np.asarray(pc.sort_indices(values), dtype=np.int64)
