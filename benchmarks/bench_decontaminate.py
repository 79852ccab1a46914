"""Decontamination throughput: factory's compiled n-gram lookup vs the straightforward Python check.

Both check the same synthetic ~2 KB traces (a problem, a `<think>` block of math-flavoured
words, a boxed answer; `--non-ascii` of them carry symbols such as × ≤ π, accents or CJK) for
an 8-gram shared with GSM8K test, MATH-500 or AIME 2024 (read from ../shared/data). A known
share (`--contaminated`) has a benchmark item inserted, half verbatim and half lightly edited
(upper-cased, doubled spaces, spaced punctuation).

  straightforward  `set(ngrams(words(text), 8)) & benchmark_ngrams`: Python sets of word tuples
  factory          the `Decontaminate` stage's `process_batch` on records, batch by batch:
                   text prep, compiled hashing and lookup, evidence for the hits

Same docs, same process; both warmed up first (the kernels' JIT compile, or numba's cache
load, is timed separately). The runs alternate `--repeats` times and medians are compared.
Flags must be identical, and every planted doc flagged, or the script exits 1. Goal: >= 5x.

    python benchmarks/bench_decontaminate.py [--docs 20000] [--contaminated 0.05] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"
BENCHMARKS = [  # name, file, text field, id field
    ("gsm8k_test", "gsm8k/test.jsonl", "question", None),
    ("math500", "math500/test.jsonl", "problem", None),
    ("aime2024", "aime2024/test.jsonl", "problem", "id"),
]
N = 8
MATH = ["=", "+", "-", "$", "\\frac{3}{4}", "x^2", "(", ")", ",", ".", "\\cdot", "so", "then"]
NON_ASCII = ["×", "≤", "π", "√2", "café", "数学", "−", "²", "é", "😀", "“", "”"]


def benchmark_items() -> list[tuple[str, str, str]]:
    """(benchmark, item id, text) for every item of the three sets."""
    items = []
    for name, path, field, id_field in BENCHMARKS:
        rows = [json.loads(x) for x in (DATA / path).read_text().splitlines() if x.strip()]
        items += [(name, str(r[id_field] if id_field else i), r[field]) for i, r in enumerate(rows)]
    return items


def synthetic_docs(count: int, contaminated: float, non_ascii: float, seed: int = 0):
    """`count` texts of ~2 KB and whether each has a benchmark item planted in it."""
    from filters.decontaminate import words

    rng = random.Random(seed)
    train = (DATA / "gsm8k" / "train.jsonl").read_text().splitlines()[:2000]
    vocab = sorted({w for x in train for w in json.loads(x)["question"].split() if w.isascii()})
    items = [text for _, _, text in benchmark_items() if len(words(text)) >= N]  # can match
    docs, planted = [], []
    for _ in range(count):
        extra = NON_ASCII if rng.random() < non_ascii else []
        pool = vocab + MATH * 20 + extra * 10
        problem = " ".join(rng.choices(pool, k=40))
        think = " ".join(rng.choices(pool, k=230))
        text = f"{problem}\n<think>\n{think}\n</think>\nThe answer is $\\boxed{{{rng.randint(1, 999)}}}$."
        leak = rng.random() < contaminated
        if leak:
            item = rng.choice(items)
            if rng.random() < 0.5:  # lightly edited
                item = item.upper().replace("  ", " ").replace(",", " , ").replace(" ", "  ")
            at = rng.randrange(len(text))
            at = text.rfind(" ", 0, at) + 1  # at a word boundary
            text = f"{text[:at]}{item} {text[at:]}"
        docs.append(text)
        planted.append(leak)
    return docs, planted


def straightforward_index(items: list[tuple[str, str, str]]) -> set[tuple[str, ...]]:
    from filters.decontaminate import ngrams, words

    return {gram for _, _, text in items for gram in ngrams(words(text), N)}


def straightforward(docs: list[str], bench: set[tuple[str, ...]]) -> list[bool]:
    from filters.decontaminate import ngrams, words

    return [bool(set(ngrams(words(text), N)) & bench) for text in docs]


def factory_index(items: list[tuple[str, str, str]]):
    from filters.decontaminate import BenchmarkIndex

    index = BenchmarkIndex(N)
    for name, path, field, id_field in BENCHMARKS:
        index.add_file(name, DATA / path, field, id_field)
    index.find(None)  # merges the added items into the sorted keys and the bitmap
    return index


def factory(records: list, index) -> list[bool]:
    from factory.stage import Drop
    from filters.decontaminate import Decontaminate

    stage = Decontaminate(index, ["completion"], "traces")
    flags = []
    for i in range(0, len(records), stage.batch_size):
        batch = records[i : i + stage.batch_size]
        flags += [isinstance(r, Drop) for r in stage.process_batch(batch)]
    return flags


def built(build, items) -> tuple[object, float, float]:
    """(index, build seconds, MB still allocated by the index: tracemalloc, a second build)."""
    t0 = time.perf_counter()
    index = build(items)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    again = build(items)
    mb = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    del again
    return index, seconds, mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=20_000)
    ap.add_argument("--contaminated", type=float, default=0.05, help="share with a planted item")
    ap.add_argument("--non-ascii", type=float, default=0.15, help="share with non-ASCII words")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from factory.record import Record
    from filters.decontaminate import BenchmarkIndex

    t0 = time.perf_counter()
    BenchmarkIndex(N).find("numba compiles or loads its cached kernels on this first call")
    jit = time.perf_counter() - t0

    items = benchmark_items()
    bench, bench_s, bench_mb = built(straightforward_index, items)
    index, index_s, index_mb = built(factory_index, items)
    docs, planted = synthetic_docs(args.docs, args.contaminated, args.non_ascii)
    records = [
        Record(problem_id=str(i), source="bench", problem="", gold=None, completion=text)
        for i, text in enumerate(docs)
    ]
    straightforward(docs[:500], bench)  # warm-up
    factory(records[:500], index)

    times: dict[str, list[float]] = {"straightforward": [], "factory": []}
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        want = straightforward(docs, bench)
        times["straightforward"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = factory(records, index)
        times["factory"].append(time.perf_counter() - t0)

    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"{args.docs} docs ({mb:.1f} MB), {sum(planted)} planted, {sum(want)} flagged, n={N}")
    print(f"index: {len(index.keys)} n-gram hashes from {len(items)} benchmark items")
    print(f"{'':16} {'build s':>8} {'index MB':>9} {'docs/s':>10} {'MB/s':>7}")
    rates = {}
    for name, build_s, index_mb_ in [
        ("straightforward", bench_s, bench_mb),
        ("factory", index_s, index_mb),
    ]:
        seconds = statistics.median(times[name])
        rates[name] = args.docs / seconds
        print(f"{name:16} {build_s:8.2f} {index_mb_:9.1f} {rates[name]:10.0f} {mb / seconds:7.1f}")
    print("index MB: allocated by the built index (tracemalloc); factory's text prep also keeps")
    print("  a 1.1 MB table of word code points, built on first use")
    print(f"first kernel call (JIT compile or cache load): {jit:.2f} s, not in the timings")
    print(f"ratio factory / straightforward: {rates['factory'] / rates['straightforward']:.1f}x")
    if got != want or not all(f for f, p in zip(want, planted, strict=True) if p):
        sys.exit("FAIL: flags differ from the straightforward check, or a planted doc was missed")
    print("flags identical")


if __name__ == "__main__":
    main()
