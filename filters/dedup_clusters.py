"""From LSH buckets to clusters: confirmed pairs, union-find, one survivor per cluster.

Compiled with numba because these loops run over every candidate pair of a million rows;
in Python they would cost more than computing the signatures.
"""

from __future__ import annotations

import numpy as np
from numba import njit

WINDOW = 64  # in a bucket (sorted by id), each member is compared with the next WINDOW


@njit(cache=True)
def confirmed_pairs(
    members: np.ndarray,
    offsets: np.ndarray,
    rank: np.ndarray,
    sig: np.ndarray,
    min_equal: int,
    window: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Pairs of rows that share an LSH bucket and whose signatures agree on at least
    `min_equal` positions (estimated Jaccard >= threshold). Buckets are ordered by id rank, so
    the result does not depend on the order rows arrived in. Returns (left, right, compared)."""
    total = 0
    for g in range(len(offsets) - 1):
        m = offsets[g + 1] - offsets[g]
        for i in range(m):
            total += min(window, m - 1 - i)
    left = np.empty(total, dtype=np.int64)
    right = np.empty(total, dtype=np.int64)
    found = 0
    k = sig.shape[1]
    for g in range(len(offsets) - 1):
        bucket = members[offsets[g] : offsets[g + 1]]
        bucket = bucket[np.argsort(rank[bucket], kind="mergesort")]
        m = len(bucket)
        for i in range(m):
            for j in range(i + 1, min(m, i + 1 + window)):
                x, y = bucket[i], bucket[j]
                equal = 0
                for p in range(k):
                    if sig[x, p] == sig[y, p]:
                        equal += 1
                if equal >= min_equal:
                    left[found] = x
                    right[found] = y
                    found += 1
    return left[:found].copy(), right[:found].copy(), total


@njit(cache=True)
def _find(parent: np.ndarray, x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:  # path compression
        parent[x], x = root, parent[x]
    return root


@njit(cache=True)
def union_find(n: int, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Component of each row (the smallest row index in it)."""
    parent = np.arange(n)
    for e in range(len(left)):
        a, b = _find(parent, left[e]), _find(parent, right[e])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for x in range(n):
        parent[x] = _find(parent, x)
    return parent


def equal_key_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges linking rows with equal keys (each to the next in sorted order)."""
    order = np.argsort(keys, kind="stable")
    same = keys[order[1:]] == keys[order[:-1]]
    return order[:-1][same], order[1:][same]


def survivors(
    component: np.ndarray, unverified: np.ndarray, length: np.ndarray, rank: np.ndarray
) -> np.ndarray:
    """For each row, the row that survives its component: sorted by (unverified, length,
    id rank), first wins. `length` is 0 for "first by id", -len for "longest"."""
    order = np.lexsort((rank, length, unverified, component))
    first = np.ones(len(order), dtype=bool)
    first[1:] = component[order[1:]] != component[order[:-1]]
    winner = np.empty(len(component), dtype=np.int64)
    winner[component[order[first]]] = order[first]
    return winner[component]
