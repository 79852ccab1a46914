"""What a dedup worker computes for a batch of texts: exact keys, MinHash signatures, band keys.

Runs in worker processes (filters/worker_pool.py) for large inputs and in process for small
ones; the arrays it returns are all the clustering step needs, so texts never come back.
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np

from filters.normalize import normalize


@cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from filters.text_kernels import permutations

    return permutations(num_perm, seed)


def sketch(
    texts: list[str],
    steps: tuple[str, ...],
    shingle: int,
    num_perm: int,
    seed: int,
    bands: int,
    rows: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exact keys int64[n], signatures uint32[n, num_perm], band keys uint64[n, bands])."""
    from filters.text_kernels import band_keys, fold32, ngram_hashes, pack, signatures

    encoded = [normalize(t, steps).encode("utf-8", "surrogatepass") for t in texts]
    exact = np.array(
        [
            int.from_bytes(hashlib.blake2b(e, digest_size=8).digest(), "little", signed=True)
            for e in encoded
        ],
        dtype=np.int64,
    )
    if bands == 0:  # exact only
        return exact, np.empty((len(texts), 0), np.uint32), np.empty((len(texts), 0), np.uint64)
    hashes, starts = ngram_hashes(*pack(encoded), shingle, True)
    a, b = _permutations(num_perm, seed)
    sig = signatures(fold32(hashes), starts, a, b)
    return exact, sig, band_keys(sig, bands, rows)
