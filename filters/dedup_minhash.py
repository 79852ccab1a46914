"""Near-duplicates with datasketch's MinHash + LSH, streaming.

Each record's text is shingled into word n-grams; LSH proposes candidates among the records
kept so far, and a candidate counts only if its estimated Jaccard similarity reaches the
threshold (LSH banding alone lets some lower pairs through). The first record of a cluster
is kept; later near-copies are dropped (`duplicate_near`) with the kept record's id as
`dedup_cluster`. This is the small-scale reference path; the million-trace version with
vectorized hashing and on-disk band keys is a later step.
"""

from __future__ import annotations

from factory.recipe import DedupLevel
from factory.record import Record
from factory.stage import Drop, Filter
from filters.dedup_exact import dedup_text, normalize, record_key


def shingles(text: str, n: int) -> set[bytes]:
    words = normalize(text).split(" ")
    if len(words) <= n:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)}


class NearDedup(Filter):
    def __init__(self, cfg: DedupLevel, level: str, seed: int = 1) -> None:
        from datasketch import MinHashLSH

        self.name = f"dedup_{level}_near"
        super().__init__()
        self.cfg, self.seed = cfg, seed
        self.lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
        self.signatures: dict[str, object] = {}

    def signature(self, text: str):
        from datasketch import MinHash

        m = MinHash(num_perm=self.cfg.num_perm, seed=self.seed)
        m.update_batch(list(shingles(text, self.cfg.shingle)))
        return m

    def process(self, record: Record) -> Record | Drop:
        m = self.signature(dedup_text(record, self.cfg.fields))
        for key in sorted(self.lsh.query(m)):  # sorted: deterministic choice among candidates
            if m.jaccard(self.signatures[key]) >= self.cfg.threshold:
                return Drop("duplicate_near", cluster=key)
        key = record_key(record)
        self.lsh.insert(key, m)
        self.signatures[key] = m
        record.dedup_cluster = record.dedup_cluster or key
        return record
