"""Compiled kernels for word n-gram hashing, MinHash signatures and LSH band keys.

Why not only datasketch: `MinHash.update_batch` hashes every shingle with a Python call
(`sha1_hash32`), which caps it at a few thousand 2 KB documents per second; datasketch's
`MinHashLSH` keeps Python dicts of bytes keys (several KB per document). At a million traces
both are the bottleneck. Here texts are normalized in Python (C-level str/bytes methods),
packed into one byte buffer, and numba loops do the rest:

- `ngram_hashes`: a 64-bit polynomial hash of every word n-gram (words separated by ASCII
  whitespace in the buffer; the n-gram's bytes are its words joined by one space), from prefix
  hashes, so each n-gram costs O(1) whatever its length.
- `signatures`: datasketch's "affine32" MinHash scheme (its default since 2.0) bit for bit:
  MurmurHash3 fmix32 of each 32-bit shingle hash, then `a_k * h + b_k mod 2^32`, minimum per
  permutation. With the same seed (same `a`, `b` from datasketch itself) and datasketch given
  `poly_hash32` as its `hashfunc`, the signatures are identical (tests/filters/test_text_kernels.py).
- `band_keys`: one 64-bit key per LSH band (r consecutive signature values), the grouping key
  of datasketch's `MinHashLSH` hash tables, in 8 bytes instead of a pickled bytes object.

Equality with datasketch is the contract; speed and memory are measured against it in
benchmarks/bench_dedup.py.
"""

from __future__ import annotations

import numpy as np
from numba import njit

P = np.uint64(0x100000001B3)  # FNV-64 prime (odd): the polynomial base
_M32 = np.uint64(0xFFFFFFFF)


def poly_hash64(data: bytes) -> int:
    """The n-gram hash in pure Python (the reference for the kernel)."""
    h = 0
    for byte in data:
        h = (h * 0x100000001B3 + byte) & 0xFFFFFFFFFFFFFFFF
    return h


def poly_hash32(data: bytes) -> int:
    """32-bit shingle hash: `poly_hash64` folded. Give it to datasketch as `hashfunc`."""
    h = poly_hash64(data)
    return (h ^ (h >> 32)) & 0xFFFFFFFF


def pack(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Texts → one uint8 buffer and offsets (text i is buf[offsets[i]:offsets[i + 1]])."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=offsets[1:])
    buf = np.frombuffer(b"".join(texts), dtype=np.uint8)
    return buf, offsets


@njit(cache=True, inline="always")
def _pow(base: np.uint64, exp: np.int64) -> np.uint64:
    result = np.uint64(1)
    while exp > 0:
        if exp & 1:
            result = result * base
        base = base * base
        exp >>= 1
    return result


@njit(cache=True)
def ngram_hashes(
    buf: np.ndarray, offsets: np.ndarray, n: int, short_docs: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of every word n-gram of every text, per-text start offsets into them, and the
    hash of each whole text with its whitespace collapsed (words joined by one space).

    A text with fewer than n words gives one hash of all its words when `short_docs` (so an
    empty or short text still has a shingle, as in MinHash) and none otherwise (an n-gram
    check has nothing to match).
    """
    ndocs = len(offsets) - 1
    # upper bound on n-grams: one per word start, plus one for each short text
    out = np.empty(len(buf) // 2 + 2 * ndocs + 1, dtype=np.uint64)
    starts = np.zeros(ndocs + 1, dtype=np.int64)
    whole = np.empty(ndocs, dtype=np.uint64)
    prefix = np.empty(len(buf) + 1, dtype=np.uint64)
    wstart = np.empty(len(buf) // 2 + 2, dtype=np.int64)
    wend = np.empty(len(buf) // 2 + 2, dtype=np.int64)
    powers = np.empty(4096, dtype=np.uint64)  # P^k for n-grams up to 4 KB; longer: _pow
    powers[0] = np.uint64(1)
    for i in range(1, len(powers)):
        powers[i] = powers[i - 1] * P
    count = 0
    for d in range(ndocs):
        lo, hi = offsets[d], offsets[d + 1]
        # words: maximal runs of bytes > 0x20; prefix hash over the canonical text
        # "w1 w2 ... wk" (one space between words), built as we go
        nwords = 0
        plen = 0
        h = np.uint64(0)  # running hash, kept in a register; prefix[k] = hash of k bytes
        prefix[0] = h
        inword = False
        for i in range(lo, hi):
            c = buf[i]
            if c > 32:
                if not inword:
                    if nwords > 0:  # the single separating space
                        h = h * P + np.uint64(32)
                        plen += 1
                        prefix[plen] = h
                    wstart[nwords] = plen
                    inword = True
                h = h * P + np.uint64(c)
                plen += 1
                prefix[plen] = h
            elif inword:
                wend[nwords] = plen
                nwords += 1
                inword = False
        if inword:
            wend[nwords] = plen
            nwords += 1
        whole[d] = prefix[plen]
        if nwords < n:
            if short_docs:
                out[count] = prefix[plen]
                count += 1
        else:
            for w in range(nwords - n + 1):
                s, e = wstart[w], wend[w + n - 1]
                span = e - s
                scale = powers[span] if span < len(powers) else _pow(P, span)
                out[count] = prefix[e] - prefix[s] * scale
                count += 1
        starts[d + 1] = count
    return out[:count].copy(), starts, whole


@njit(cache=True)
def fold32(hashes: np.ndarray) -> np.ndarray:
    out = np.empty(len(hashes), dtype=np.uint32)
    for i in range(len(hashes)):
        h = hashes[i]
        out[i] = np.uint32((h ^ (h >> np.uint64(32))) & _M32)
    return out


@njit(cache=True, inline="always")
def _fmix32(h: np.uint64) -> np.uint64:
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    return h ^ (h >> np.uint64(16))


@njit(cache=True)
def signatures(
    hashes32: np.ndarray, starts: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """MinHash signatures (datasketch affine32) of each text's shingle hashes (uint32
    arithmetic wraps mod 2^32 as datasketch's does; the loop over permutations vectorizes)."""
    ndocs = len(starts) - 1
    k = len(a)
    sig = np.empty((ndocs, k), dtype=np.uint32)
    row = np.empty(k, dtype=np.uint32)
    for d in range(ndocs):
        row[:] = np.uint32(0xFFFFFFFF)
        for s in range(starts[d], starts[d + 1]):
            h = np.uint32(_fmix32(np.uint64(hashes32[s])))
            for j in range(k):
                row[j] = min(row[j], np.uint32(a[j] * h + b[j]))
        sig[d, :] = row
    return sig


@njit(cache=True)
def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit key per (text, band): equal bands give equal keys."""
    ndocs = sig.shape[0]
    out = np.empty((ndocs, bands), dtype=np.uint64)
    for d in range(ndocs):
        for band in range(bands):
            h = np.uint64(0x9E3779B97F4A7C15) * np.uint64(band + 1)
            for j in range(band * rows, (band + 1) * rows):
                h = (h ^ np.uint64(sig[d, j])) * np.uint64(0xFF51AFD7ED558CCD)
                h ^= h >> np.uint64(29)
            out[d, band] = h
    return out


def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's own affine32 permutation parameters for (num_perm, seed)."""
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return np.ascontiguousarray(a, dtype=np.uint32), np.ascontiguousarray(b, dtype=np.uint32)


FALSE_NEGATIVE_WEIGHT = 0.9


def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows) by datasketch's own optimizer, weighted toward recall: every candidate
    pair is confirmed on its signatures afterwards, so an extra candidate costs one
    comparison while a missed one is a duplicate kept. With datasketch's default weights
    (0.5, 0.5) a pair at the threshold is a candidate only ~40% of the time; with (0.1, 0.9)
    ~87% at 0.8, and ~98% at 0.05 above it."""
    from datasketch.lsh import _optimal_param

    return _optimal_param(threshold, num_perm, 1 - FALSE_NEGATIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)
