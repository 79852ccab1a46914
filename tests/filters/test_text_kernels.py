"""The compiled kernels against their references: pure-Python hashing and datasketch itself."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from filters.text_kernels import (
    band_keys,
    fold32,
    lsh_params,
    ngram_hashes,
    pack,
    permutations,
    poly_hash32,
    poly_hash64,
    signatures,
)


def _shingles(text: str, n: int) -> list[bytes]:
    words = text.split()
    if len(words) < n:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + n]).encode() for i in range(len(words) - n + 1)]


def _docs(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(3000)] + ["ünï", "数学", "🙂", "x" * 300]
    seps = [" ", "  ", "\t", "\n"]
    return [
        "".join(rng.choice(vocab) + rng.choice(seps) for _ in range(rng.randint(0, 120)))
        for _ in range(count)
    ] + ["", " ", "one", "two words", "x" * 5000 + " y"]


@pytest.mark.parametrize("n", [1, 3, 5, 8])
def test_ngram_hashes_equal_the_python_reference(n):
    docs = _docs(120)
    hashes, starts, _ = ngram_hashes(*pack([d.encode() for d in docs]), n, True)
    for i, doc in enumerate(docs):
        assert list(hashes[starts[i] : starts[i + 1]]) == [
            poly_hash64(s) for s in _shingles(doc, n)
        ]


def test_short_texts_have_no_ngrams_unless_asked():
    _, starts, _ = ngram_hashes(*pack([b"", b"a b", b"a b c"]), 3, False)
    assert list(np.diff(starts)) == [0, 0, 1]


@pytest.mark.parametrize(("num_perm", "seed", "n"), [(128, 1, 5), (64, 7, 3), (256, 42, 1)])
def test_signatures_are_datasketchs(num_perm, seed, n):
    docs = _docs(150, seed)
    a, b = permutations(num_perm, seed)
    hashes, starts, _ = ngram_hashes(*pack([d.encode() for d in docs]), n, True)
    sig = signatures(fold32(hashes), starts, a, b)
    for i, doc in enumerate(docs):
        m = MinHash(num_perm=num_perm, seed=seed, hashfunc=poly_hash32)
        m.update_batch(_shingles(doc, n))
        assert np.array_equal(m.hashvalues, sig[i]), i


def test_equal_bands_give_equal_keys_and_lsh_candidates_match_datasketch():
    rng = random.Random(3)
    base = _docs(60, 3)[:60]
    docs = (
        base
        + [  # near copies: a few words changed
            " ".join(w if rng.random() > 0.03 else "zz" for w in d.split()) for d in base[:40]
        ]
    )
    num_perm, threshold = 128, 0.6
    bands, rows = lsh_params(threshold, num_perm)
    a, b = permutations(num_perm, 1)
    hashes, starts, _ = ngram_hashes(*pack([d.encode() for d in docs]), 3, True)
    sig = signatures(fold32(hashes), starts, a, b)
    keys = band_keys(sig, bands, rows)
    ours = {
        (i, j)
        for i in range(len(docs))
        for j in range(i + 1, len(docs))
        if (keys[i] == keys[j]).any()
    }
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    sketches = []
    for i, doc in enumerate(docs):
        m = MinHash(num_perm=num_perm, hashfunc=poly_hash32)
        m.update_batch(_shingles(doc, 3))
        lsh.insert(i, m)
        sketches.append(m)
    theirs = {
        (min(i, j), max(i, j)) for i, m in enumerate(sketches) for j in lsh.query(m) if i != j
    }
    assert ours == theirs
    assert len(ours) >= 30  # the near copies are found
