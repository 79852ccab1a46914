"""Benchmark decontamination: drop problems and traces that share an n-gram with a test set.

The standard check of open-r1 and s1: lower-cased word n-grams (default 8; 13 is also common)
of each record's text against every n-gram of the benchmark files (GSM8K test, MATH-500,
AIME 2024 in ../shared/data, or any jsonl/parquet with a text column). A hit drops the record
as `contaminated:<benchmark>` and keeps the evidence in `meta.contamination`: the benchmark,
the benchmark item's id and the matched n-gram. Words are runs of letters and digits after
Unicode NFKC folding, so spacing, punctuation, `$` and LaTeX braces do not hide a copy.

Written here rather than taken from a library: the check is a set lookup per n-gram; the
libraries that do it (datatrove's decontamination step) run inside their own pipeline engine.
It is hand-written for speed, since it reads every problem and every trace: the
straightforward version, `set(ngrams(words(text), n)) & benchmark_ngrams` in Python, is the
baseline it is timed against (benchmarks/bench_decontaminate.py) and the reference its flags
and evidence are tested against (tests/filters/test_decontaminate.py). Here a batch of texts
is NFKC-folded and lower-cased by str methods (skipped for ASCII text, which they leave
as is), its non-word characters are blanked in one compiled pass (`word_buffer`), every word
n-gram is hashed by `ngram_hashes` (filters/text_kernels.py) and `first_hits` looks the hashes
up: a bitmap first, then a binary search in the sorted benchmark hashes (about 70k for the
three default sets, under 2 MB with the bitmap). A hit is confirmed on the words themselves,
so a 64-bit hash collision cannot change a flag.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from factory.errors import ProblemSourceError
from factory.record import Record
from factory.stage import Drop, Filter
from filters.text_kernels import ngram_hashes, pack

_WORD = re.compile(r"\w+")
MAX_CHARS = 2_000_000  # texts are checked on their first 2 MB: a copied problem is at the start
# ASCII byte → itself lower-cased if a word character (letter, digit, `_`), else a space
_ASCII_OUT = np.frombuffer(
    bytes(c if _WORD.fullmatch(chr(c)) else 32 for c in range(128)).lower(), dtype=np.uint8
)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # spreads the polynomial hash over the bitmap's index bits


def words(text: str | None) -> list[str]:
    if not text:
        return []
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    return _WORD.findall(text)


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def word_buffer(texts: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """`words(t)` of each text laid out as `pack` lays out texts: the text's UTF-8 with every
    character that is not a word character blanked, ready for `ngram_hashes`."""
    buf, offsets = pack([_folded(t) for t in texts])
    buf = buf.copy()  # pack's buffer is read-only
    blank_non_words(buf, _ASCII_OUT, _word_chars())
    return buf, offsets


def _folded(text: str | None) -> bytes:
    """The first 2 MB, NFKC-folded and lower-cased, as UTF-8 (lone surrogates kept: they are not
    word characters). ASCII text needs neither: `blank_non_words` lower-cases A-Z."""
    if not text:
        return b""
    head = text[:MAX_CHARS]
    if head.isascii():
        return head.encode()
    return unicodedata.normalize("NFKC", head).lower().encode("utf-8", "surrogatepass")


@functools.cache
def _word_chars() -> np.ndarray:
    """For every code point, whether `words()`'s regex takes it as part of a word."""
    table = np.zeros(0x110000, dtype=np.bool_)
    for m in _WORD.finditer("".join(map(chr, range(0x110000)))):
        table[m.start() : m.end()] = True
    return table


@njit(cache=True)
def blank_non_words(buf: np.ndarray, ascii_out: np.ndarray, word_chars: np.ndarray) -> None:
    """In place: ASCII byte c → ascii_out[c]; a longer UTF-8 character → spaces unless a word
    character."""
    i = 0
    while i < len(buf):
        c = buf[i]
        if c < 0x80:
            buf[i] = ascii_out[c]
            i += 1
            continue
        size = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
        code = np.int64(c) & (0x7F >> size)  # the lead byte's payload bits
        for j in range(i + 1, i + size):
            code = (code << 6) | np.int64(buf[j] & 0x3F)
        if not word_chars[code]:
            buf[i : i + size] = 32
        i += size


@njit(cache=True)
def bitmap(keys: np.ndarray, bits: int, shift: np.uint64) -> np.ndarray:
    out = np.zeros(bits // 64, dtype=np.uint64)
    for h in keys:
        b = (h * _MIX) >> shift
        out[b >> np.uint64(6)] |= np.uint64(1) << (b & np.uint64(63))
    return out


@njit(cache=True)
def first_hits(
    hashes: np.ndarray, starts: np.ndarray, keys: np.ndarray, bits: np.ndarray, shift: np.uint64
) -> np.ndarray:
    """Per text, the position (in its own n-grams) of the first one whose hash is in the
    sorted `keys`, or -1. `bits` (from `bitmap`) rules out most clean n-grams in one load."""
    first = np.full(len(starts) - 1, -1, dtype=np.int64)
    for d in range(len(starts) - 1):
        for i in range(starts[d], starts[d + 1]):
            h = hashes[i]
            b = (h * _MIX) >> shift
            if (bits[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1):
                k = np.searchsorted(keys, h)
                if k < len(keys) and keys[k] == h:
                    first[d] = i - starts[d]
                    break
    return first


class BenchmarkIndex:
    """Every n-gram hash of every benchmark item → the first item (benchmark, id) that has it.

    Items are hashed as they are added and merged into the sorted `keys` at the next lookup.
    A lookup hit is confirmed on the words themselves (`_owner`), so a 64-bit hash collision
    can neither flag a clean text nor name the wrong item.
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.items: Counter[str] = Counter()
        self.owners: list[tuple[str, str, str]] = []  # (benchmark, id, " its words ") in order
        self.keys = np.empty(0, dtype=np.uint64)  # sorted unique n-gram hashes
        self.owner = np.empty(0, dtype=np.int32)  # keys[k] first seen in owners[owner[k]]
        self.bitmap = np.zeros(1, dtype=np.uint64)  # prefilter: one bit per mixed hash
        self.shift = np.uint64(58)
        self._pending: list[tuple[int, np.ndarray]] = []  # (owner, hashes) not yet in keys

    def add_file(self, name: str, path: Path, text_field: str, id_field: str | None) -> None:
        if not path.is_file():
            raise ProblemSourceError(
                f"decontaminate: benchmark '{name}' file not found: {path} (run from the "
                "repository root with ../shared beside it, set its path in "
                "decontaminate.benchmarks, or turn the check off: decontaminate.enabled=false)"
            )
        for i, row in enumerate(_rows(path)):
            if text_field not in row:
                raise ProblemSourceError(
                    f"decontaminate: {path} row {i + 1} has no '{text_field}' column "
                    f"(columns: {', '.join(row)})"
                )
            item = str(row.get(id_field, i) if id_field else i)
            self.add(name, item, str(row[text_field]))

    def add(self, benchmark: str, item: str, text: str) -> None:
        self.items[benchmark] += 1
        buf, offsets = word_buffer([text])
        hashes, _, _ = ngram_hashes(buf, offsets, self.n, False)
        self._pending.append((len(self.owners), hashes))
        self.owners.append((benchmark, item, f" {' '.join(buf.tobytes().decode().split())} "))

    def find(self, text: str | None) -> dict[str, str] | None:
        """The first benchmark n-gram in `text`, as evidence, or None."""
        return self.find_batch([text])[0]

    def find_batch(self, texts: list[str | None]) -> list[dict[str, str] | None]:
        """`find` for each text: one compiled pass over all their n-grams."""
        self._merge()
        buf, offsets = word_buffer(texts)
        hashes, starts, _ = ngram_hashes(buf, offsets, self.n, False)
        first = first_hits(hashes, starts, self.keys, self.bitmap, self.shift)
        found: list[dict[str, str] | None] = [None] * len(texts)
        for d in np.flatnonzero(first >= 0):
            tokens = buf[offsets[d] : offsets[d + 1]].tobytes().decode().split()
            found[d] = self._evidence(tokens, hashes[starts[d] : starts[d + 1]], first[d])
        return found

    def _evidence(self, tokens: list[str], hashes: np.ndarray, start: int) -> dict[str, str] | None:
        """Evidence for the first n-gram from `start` on whose words are a benchmark n-gram."""
        for i in range(start, len(hashes)):
            k = int(np.searchsorted(self.keys, hashes[i]))
            if k == len(self.keys) or self.keys[k] != hashes[i]:
                continue
            gram = " ".join(tokens[i : i + self.n])
            owner = self._owner(gram, int(self.owner[k]))
            if owner is not None:
                benchmark, item, _ = self.owners[owner]
                return {"benchmark": benchmark, "item": item, "ngram": gram}
        return None

    def _owner(self, gram: str, hint: int) -> int | None:
        """The first item added whose words contain `gram` (the hash's owner unless it collided)."""
        needle = f" {gram} "
        if needle in self.owners[hint][2]:
            return hint
        return next((i for i, (_, _, ws) in enumerate(self.owners) if needle in ws), None)

    def _merge(self) -> None:
        if not self._pending:
            return
        hashes = np.concatenate([self.keys, *(h for _, h in self._pending)])
        owner = np.concatenate(
            [self.owner, *(np.full(len(h), o, dtype=np.int32) for o, h in self._pending)]
        )
        self._pending = []
        # np.unique returns each key's first occurrence: the item added first owns it
        self.keys, first = np.unique(hashes, return_index=True)
        self.owner = owner[first]
        # about 64 bits per key: ~1.5% of clean n-grams go on to the binary search
        bits = max(64, 1 << int(64 * len(self.keys)).bit_length())
        self.shift = np.uint64(64 - (bits.bit_length() - 1))
        self.bitmap = bitmap(self.keys, bits, self.shift)


def _rows(path: Path):
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(path).to_pylist()
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


class Decontaminate(Filter):
    """Drops records whose `fields` share an n-gram with a benchmark (one stage per level)."""

    batch_size = 256  # measured: larger batches are slower (bigger fresh arrays per call)

    def __init__(self, index: BenchmarkIndex, fields: list[str], level: str) -> None:
        self.name = f"decontaminate_{level}"
        super().__init__()
        self.index, self.fields = index, fields
        self.hits: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []

    def process(self, record: Record) -> Record | Drop:
        return self.process_batch([record])[0]

    def process_batch(self, records: list[Record]) -> list[Record | Drop]:
        found = {
            f: self.index.find_batch([getattr(r, f, None) for r in records]) for f in self.fields
        }
        out: list[Record | Drop] = []
        for i, record in enumerate(records):
            field = next((f for f in self.fields if found[f][i]), None)
            if field is None:
                out.append(record)
                continue
            hit = found[field][i]
            self.hits[hit["benchmark"]] += 1
            if len(self.examples) < 5:
                self.examples.append({"id": record.id or record.problem_id, **hit})
            record.meta = {**record.meta, "contamination": {**hit, "field": field}}
            out.append(Drop(f"contaminated:{hit['benchmark']}"))
        return out

    def report(self) -> dict[str, Any]:
        return {"hits": dict(self.hits), "examples": self.examples}
