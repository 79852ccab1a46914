"""Benchmark decontamination: drop problems and traces that share an n-gram with a test set.

The standard check of open-r1 and s1: lower-cased word n-grams (default 8; 13 is also common)
of each record's text against every n-gram of the benchmark files (GSM8K test, MATH-500,
AIME 2024 in ../shared/data, or any jsonl/parquet with a text column). A hit drops the record
as `contaminated:<benchmark>` and keeps the evidence in `meta.contamination`: the benchmark,
the benchmark item's id and the matched n-gram. Words are runs of letters and digits after
Unicode NFKC folding, so spacing, punctuation, `$` and LaTeX braces do not hide a copy.

Written here rather than taken from a library: the check is a set lookup per n-gram; the
libraries that do it (datatrove's decontamination step) run inside their own pipeline engine.
The index holds one hash per benchmark n-gram (about 200k for the three default sets).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from factory.errors import ProblemSourceError
from factory.record import Record
from factory.stage import Drop, Filter

_WORD = re.compile(r"\w+")
MAX_CHARS = 2_000_000  # texts are checked on their first 2 MB: a copied problem is at the start


def words(text: str | None) -> list[str]:
    if not text:
        return []
    text = unicodedata.normalize("NFKC", text[:MAX_CHARS]).lower()
    return _WORD.findall(text)


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


class BenchmarkIndex:
    """Every n-gram of every benchmark item → (benchmark, item id)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.index: dict[int, tuple[str, str]] = {}
        self.items: Counter[str] = Counter()

    def add_file(self, name: str, path: Path, text_field: str, id_field: str | None) -> None:
        if not path.is_file():
            raise ProblemSourceError(
                f"decontaminate: benchmark '{name}' file not found: {path} (run from the "
                "repository root with ../shared beside it, or set its path)"
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
        for gram in ngrams(words(text), self.n):
            self.index.setdefault(hash(gram), (benchmark, item))

    def find(self, text: str | None) -> dict[str, str] | None:
        """The first benchmark n-gram in `text`, as evidence, or None."""
        for gram in ngrams(words(text), self.n):
            hit = self.index.get(hash(gram))
            if hit is not None:
                return {"benchmark": hit[0], "item": hit[1], "ngram": " ".join(gram)}
        return None


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

    def __init__(self, index: BenchmarkIndex, fields: list[str], level: str) -> None:
        self.name = f"decontaminate_{level}"
        super().__init__()
        self.index, self.fields = index, fields
        self.hits: Counter[str] = Counter()
        self.examples: list[dict[str, Any]] = []

    def process(self, record: Record) -> Record | Drop:
        for f in self.fields:
            hit = self.index.find(getattr(record, f, None))
            if hit is not None:
                self.hits[hit["benchmark"]] += 1
                if len(self.examples) < 5:
                    self.examples.append({"id": record.id or record.problem_id, **hit})
                record.meta = {**record.meta, "contamination": {**hit, "field": f}}
                return Drop(f"contaminated:{hit['benchmark']}")
        return record

    def report(self) -> dict[str, Any]:
        return {"hits": dict(self.hits), "examples": self.examples}
