"""Benchmark decontamination (issue 5's n-gram check): planted GSM8K test, MATH-500 and AIME
2024 items, verbatim and lightly edited, are caught with their evidence; clean problems are
not; hostile text does not crash; a run reports hits per benchmark and never generates for a
leaked problem. The compiled lookup gives the flags and evidence of the straightforward
check (Python sets of word n-grams) on a mixed corpus, for n = 8 and 13."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from factory.recipe import load_recipe
from factory.stage import Drop
from filters.decontaminate import BenchmarkIndex, Decontaminate, ngrams, word_buffer, words
from filters.text_kernels import ngram_hashes
from tests.factory.teachers.fault_server import FaultServer
from tests.helpers import loopback_overrides, trace

CLEAN = [
    "A gardener plants 14 rows of tulips with 9 bulbs in each row and later removes 11 bulbs "
    "that did not sprout. How many tulips remain in the garden?",
    "Let f be a function on the positive integers with f(1) = 3 and f(n + 1) = 2 f(n) - 1 for "
    "every n. Compute the remainder when f(20) is divided by 7.",
    "A cyclist rides uphill at 12 kilometres per hour and back down the same road at 20 "
    "kilometres per hour. What is her average speed for the round trip?",
]


def _rows(shared: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (shared / name).read_text().splitlines()]


def _index(shared: Path, n: int) -> BenchmarkIndex:
    index = BenchmarkIndex(n)
    index.add_file("gsm8k_test", shared / "gsm8k/test.jsonl", "question", None)
    index.add_file("math500", shared / "math500/test.jsonl", "problem", None)
    index.add_file("aime2024", shared / "aime2024/test.jsonl", "problem", "id")
    return index


@pytest.fixture(scope="module")
def index(shared_data):
    return _index(shared_data, 8)


def _planted(shared: Path) -> list[tuple[str, str, str]]:
    """(text, benchmark, item) for copies of benchmark items, verbatim and lightly edited."""
    gsm = _rows(shared, "gsm8k/test.jsonl")
    m500 = _rows(shared, "math500/test.jsonl")
    aime = _rows(shared, "aime2024/test.jsonl")
    edited = gsm[10]["question"].upper().replace(",", " ,").replace("  ", " ")
    return [
        (gsm[0]["question"], "gsm8k_test", "0"),
        (edited, "gsm8k_test", "10"),
        ("Solve this: " + gsm[100]["question"] + " Show your work.", "gsm8k_test", "100"),
        (m500[5]["problem"], "math500", "5"),
        (m500[200]["problem"].replace("$", " $ ").replace("\\", " \\"), "math500", "200"),
        (aime[3]["problem"].replace(" ", "  "), "aime2024", str(aime[3]["id"])),
    ]


def test_planted_items_are_caught_with_their_evidence(index, shared_data):
    for text, benchmark, item in _planted(shared_data):
        hit = index.find(text)
        assert hit is not None and (hit["benchmark"], hit["item"]) == (benchmark, item), text
        assert len(hit["ngram"].split()) == 8 and hit["ngram"] in " ".join(words(text))


def test_clean_problems_and_hostile_text_pass(index):
    for text in [*CLEAN, "", None, "x" * 10_000_000, "😀 " * 1000, "\ud800 ab", "数学 " * 50]:
        assert index.find(text) is None


def test_the_stage_drops_with_the_benchmark_in_the_reason(index, shared_data):
    stage = Decontaminate(index, ["completion"], "traces")
    leaked = trace("<think>" + _planted(shared_data)[3][0] + "</think> 4")
    assert stage.process(leaked).reason == "contaminated:math500"
    assert leaked.meta["contamination"]["field"] == "completion"
    assert stage.process(trace("<think>" + CLEAN[0] + "</think> 115")) is not None
    assert stage.report()["hits"] == {"math500": 1}


def test_a_run_never_generates_for_a_leaked_problem(tmp_path, shared_data):
    from factory.pipeline import run_recipe

    planted = _planted(shared_data)
    rows = [{"id": f"leak{i}", "question": t, "answer": "1"} for i, (t, _, _) in enumerate(planted)]
    rows += [{"id": f"clean{i}", "question": t, "answer": "1"} for i, t in enumerate(CLEAN)]
    problems = tmp_path / "p.jsonl"
    problems.write_text("".join(json.dumps(r) + "\n" for r in rows))
    benchmarks = (
        f"[{{name: gsm8k_test, path: {shared_data}/gsm8k/test.jsonl, text_field: question}}, "
        f"{{name: math500, path: {shared_data}/math500/test.jsonl}}, "
        f"{{name: aime2024, path: {shared_data}/aime2024/test.jsonl, id_field: id}}]"
    )
    with FaultServer() as server:
        recipe = load_recipe(
            "math-cot",
            [
                *loopback_overrides(server.url, problems),
                "teacher.n=1",
                "dedup.problems.near=false",
                "decontaminate.enabled=true",
                f"decontaminate.benchmarks={benchmarks}",
            ],
        )
        m = run_recipe(recipe, tmp_path / "run")
        asked = sum(server.requests.values())
    assert asked == len(CLEAN)  # no teacher time on leaked problems
    report = m["decontamination"]
    assert report["benchmarks"] == {"gsm8k_test": 1319, "math500": 500, "aime2024": 30}
    assert report["problems"]["hits"] == {"gsm8k_test": 3, "math500": 2, "aime2024": 1}
    drops = {s["name"]: s["drops"] for s in m["stages"]}["decontaminate_problems"]
    assert drops == {
        "contaminated:gsm8k_test": 3,
        "contaminated:math500": 2,
        "contaminated:aime2024": 1,
    }


def test_a_missing_benchmark_file_is_named(tmp_path):
    from factory.errors import ProblemSourceError

    index = BenchmarkIndex(8)
    with pytest.raises(ProblemSourceError, match="benchmark 'x' file not found"):
        index.add_file("x", tmp_path / "nope.jsonl", "problem", None)


# --- the compiled lookup against the straightforward check ---------------------------------


def _reference(shared: Path, n: int):
    """The straightforward check: a dict of every benchmark n-gram tuple (first item wins);
    a text is flagged by the first of its own n-grams in it."""
    owner: dict[tuple[str, ...], tuple[str, str]] = {}
    for name, path, field, id_field in [
        ("gsm8k_test", "gsm8k/test.jsonl", "question", None),
        ("math500", "math500/test.jsonl", "problem", None),
        ("aime2024", "aime2024/test.jsonl", "problem", "id"),
    ]:
        for i, row in enumerate(_rows(shared, path)):
            item = str(row[id_field] if id_field else i)
            for gram in ngrams(words(row[field]), n):
                owner.setdefault(gram, (name, item))

    def find(text):
        grams = ngrams(words(text), n)
        if not set(grams) & owner.keys():
            return None
        gram = next(g for g in grams if g in owner)
        return {"benchmark": owner[gram][0], "item": owner[gram][1], "ngram": " ".join(gram)}

    return find


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _corpus(shared: Path) -> list[str | None]:
    """Planted items (verbatim, edited, inside non-ASCII text, in full-width letters that NFKC
    folds), clean problems and hostile text, in one batch."""
    gsm = [r["question"] for r in _rows(shared, "gsm8k/test.jsonl")]
    m500 = [r["problem"] for r in _rows(shared, "math500/test.jsonl")]
    aime = [r["problem"] for r in _rows(shared, "aime2024/test.jsonl")]
    rng = random.Random(5)
    marks = ["—", "“", "”", "…", "×", "≤", "😀", "\u3000", "\u00a0", "·", "→", "，"]

    def noisy(text: str) -> str:  # non-word marks glued to words: the words stay the same
        return "".join(w + rng.choice(["", " ", *marks]) + " " for w in text.split())

    filler = " ".join(rng.choices(" ".join(CLEAN).split(), k=250_000)) + " "  # ~1 MB
    surrogates = b"caf\xe9 \xff\xfe " + gsm[7].encode() + b" \xed\xa0\x80"
    head = words(gsm[30])[:13]
    return [
        *(t for t, _, _ in _planted(shared)),
        *(gsm[i] for i in range(0, 1319, 97)),  # some GSM8K items have ’ or a no-break space
        *(m500[i] for i in range(3, 500, 61)),
        *aime[::7],
        *(noisy(gsm[i]) for i in range(5, 1319, 131)),
        _fullwidth(m500[42]),  # NFKC folds full-width letters
        "ＴＨＥ　ｑｕｉｃｋ " + aime[9].upper(),
        "数学题：" + m500[77] + "。答案是？",
        surrogates.decode("utf-8", "surrogateescape"),
        "\udcff\ud800" + m500[8] + "\udfff",
        "first " + " ".join(head[:6]),  # an n-gram split over two texts of one batch ...
        " ".join(head[6:]) + " last",  # ... is in neither
        *CLEAN,
        "",
        None,
        "   \n\t ",
        "x" * 10_000_000,
        filler + gsm[99] + " " + filler * 7,  # 10 MB, a copy inside the first 2 MB
        filler * 3 + gsm[98],  # a copy after the first 2 MB is not read
        "y " * 999_980 + gsm[95],  # the 2 MB cut falls inside the copy
        "é" * 1_000_000 + " " + gsm[97],  # the cut counts characters, not bytes
        "😀 " * 1000 + gsm[96] + " 😀" * 1000,
        "Ünïcödé ελληνικά русский العربية हिन्दी 数学题 ǅ ﬁ ß ① " * 40,
        "「問題」：計算せよ、１２３＋４５６は？【答】５７９。" * 20,
        noisy(" ".join(CLEAN)),
    ]


@pytest.mark.parametrize("n", [8, 13])
def test_flags_and_evidence_equal_the_straightforward_check(shared_data, n):
    index, reference = _index(shared_data, n), _reference(shared_data, n)
    corpus = _corpus(shared_data)
    want = [reference(t) for t in corpus]
    assert index.find_batch(corpus) == want
    assert [index.find(t) for t in corpus[:40]] == want[:40]
    assert sum(w is not None for w in want) >= 35  # the corpus does hold copies


def test_word_buffer_holds_exactly_the_words(shared_data):
    rng = random.Random(0)
    everything = [chr(c) for c in range(0x110000) if rng.random() < 0.003]
    texts = ["".join(rng.choices(everything + list(" .,Aa_1"), k=200)) for _ in range(500)]
    texts += [_fullwidth("ABC def"), "İstanbul ǅ ﬁx Ⅻ ①", "e\u0301 c\u0327", "\udcff x\ud800"]
    buf, offsets = word_buffer(texts)
    for i, text in enumerate(texts):
        assert buf[offsets[i] : offsets[i + 1]].tobytes().decode().split() == words(text), text


def test_a_hash_collision_neither_flags_nor_misnames():
    index = BenchmarkIndex(3)
    index.add("a", "0", "alpha beta gamma delta")
    index.add("b", "1", "one two three four")
    index.find(None)
    index.owner[:] = 0  # every hash now claims item 0, as if "b"'s n-grams collided with it
    clean = word_buffer(["red green blue"])
    index._pending.append((0, np.unique(ngram_hashes(*clean, 3, False)[0])))
    assert index.find("one two three")["benchmark"] == "b"  # confirmed on the words
    assert index.find("beta gamma delta")["benchmark"] == "a"
    assert index.find("red green blue") is None  # its hash is "in" the index, its words are not


def test_the_stage_checks_fields_in_order_over_a_batch(index, shared_data):
    leak = _planted(shared_data)
    records = [
        trace(CLEAN[0], problem=CLEAN[1]),
        trace(leak[0][0], problem=CLEAN[1]),
        trace(leak[0][0], problem=leak[3][0]),
        trace(None, problem=None),
    ]
    stage = Decontaminate(index, ["problem", "completion"], "both")
    out = stage.process_batch(records)
    assert out[0] is records[0] and out[3] is records[3]
    assert [o.reason for o in out[1:3]] == ["contaminated:gsm8k_test", "contaminated:math500"]
    assert records[1].meta["contamination"] == {**index.find(leak[0][0]), "field": "completion"}
    assert records[2].meta["contamination"]["field"] == "problem"
    assert isinstance(stage.process(records[2]), Drop)
    assert stage.report()["hits"] == {"gsm8k_test": 1, "math500": 2}
