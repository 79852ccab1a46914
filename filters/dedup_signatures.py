"""What a dedup worker computes for a batch of texts: exact keys, MinHash signatures, band keys.

Runs in worker processes (filters/worker_pool.py) for large inputs and in process for small
ones; the arrays it returns are all the clustering step needs, so texts never come back.
"""

from __future__ import annotations

import hashlib
from functools import cache

import numpy as np

from filters.normalize import normalize_bytes


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
    """(exact keys int64[n], signatures uint32[n, num_perm], band keys uint64[n, bands]).

    With `whitespace` among the steps the exact key is the kernel's hash of the text's words
    joined by one space (64-bit; no extra pass); without it, a BLAKE2b of the text as is."""
    from filters.text_kernels import band_keys, fold32, ngram_hashes, pack, signatures

    collapse = "whitespace" in steps
    encoded = [normalize_bytes(t, steps) for t in texts]
    hashes, starts, whole = ngram_hashes(*pack(encoded), shingle, True)
    if collapse:
        exact = whole.view(np.int64)
    else:
        exact = np.array([blake64(e) for e in encoded], dtype=np.int64)
    if bands == 0:  # exact only
        return exact, np.empty((len(texts), 0), np.uint32), np.empty((len(texts), 0), np.uint64)
    a, b = _permutations(num_perm, seed)
    sig = signatures(fold32(hashes), starts, a, b)
    return exact, sig, band_keys(sig, bands, rows)


def blake64(data: bytes) -> int:
    """A signed 64-bit BLAKE2b of `data` (exact keys, scope keys)."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little", signed=True)
