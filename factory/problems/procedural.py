"""Seeded procedural problems with exact gold answers, from reasoning-gym's generators.

reasoning-gym ships ~100 maintained generators (arithmetic, algebra, logic, …) with scorers;
using it beats writing our own. Several generators interleave round-robin so that
`acceptance by source` compares them on equal footing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator

from factory.errors import ProblemSourceError
from factory.recipe import SourceConfig
from factory.record import Record


def _datasets(cfg: SourceConfig) -> list[tuple[str, object]]:
    try:
        import reasoning_gym
        from reasoning_gym.factory import DATASETS
    except ImportError:
        raise ProblemSourceError(
            "source.kind=procedural needs `pip install reasoning-gym`"
        ) from None
    if cfg.limit is None:
        raise ProblemSourceError("source.limit: procedural sources need a problem count (e.g. 24)")
    per_generator = -(-cfg.limit // len(cfg.generators))  # ceiling division
    out = []
    for name in cfg.generators:
        if name not in DATASETS:
            close = difflib.get_close_matches(name, list(DATASETS), n=3)
            hint = f" — did you mean {', '.join(close)}?" if close else ""
            raise ProblemSourceError(
                f"source.generators: unknown reasoning-gym generator '{name}'{hint}"
            )
        args = cfg.generator_args.get(name, {})
        try:
            ds = reasoning_gym.create_dataset(
                name, size=max(per_generator, 1), seed=cfg.seed, **args
            )
        except (TypeError, ValueError, AssertionError) as exc:
            raise ProblemSourceError(
                f"source.generator_args.{name}: reasoning-gym rejected {args!r}: {exc}"
            ) from None
        out.append((name, ds))
    return out


def check(cfg: SourceConfig) -> int:
    _datasets(cfg)
    return cfg.limit or 0


def read(cfg: SourceConfig) -> Iterator[Record]:
    datasets = _datasets(cfg)
    for i in range(cfg.limit or 0):
        name, ds = datasets[i % len(datasets)]
        index = i // len(datasets)
        item = ds[index]
        label = cfg.label or f"reasoning_gym/{name}"
        yield Record(
            problem_id=f"{name}:s{cfg.seed}:{index}",
            source=label,
            problem=item["question"],
            gold=str(item["answer"]) if item.get("answer") not in (None, "") else None,
            meta={"generator": name, "generator_metadata": item.get("metadata", {})},
        )
