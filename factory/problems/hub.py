"""Problems from a Hugging Face `datasets` name (needs the network or a warm local cache)."""

from __future__ import annotations

from collections.abc import Iterator

from factory.errors import ProblemSourceError
from factory.problems.gold import gold_answer
from factory.recipe import SourceConfig
from factory.record import Record


def _load(cfg: SourceConfig):
    try:
        import datasets
    except ImportError:
        raise ProblemSourceError("source.kind=hub needs `pip install datasets`") from None
    try:
        ds = datasets.load_dataset(cfg.name, cfg.subset, split=cfg.split)
    except Exception as exc:  # network, missing config, unknown split: datasets raises many types
        raise ProblemSourceError(
            f"could not load dataset '{cfg.name}' (subset={cfg.subset}, split={cfg.split}): "
            f"{str(exc).rstrip('.')}. "
            "Offline? Save it as jsonl/parquet elsewhere and use source.kind=file."
        ) from None
    for key in (cfg.question_field, cfg.answer_field):
        if key not in ds.column_names:
            raise ProblemSourceError(
                f"dataset '{cfg.name}': column '{key}' not found "
                f"(columns: {', '.join(ds.column_names)}); set source.question_field/answer_field"
            )
    return ds


def check(cfg: SourceConfig) -> int:
    ds = _load(cfg)
    return len(ds) if cfg.limit is None else min(cfg.limit, len(ds))


def read(cfg: SourceConfig) -> Iterator[Record]:
    ds = _load(cfg)
    label = cfg.label or cfg.name
    for index, row in enumerate(ds):
        if cfg.limit is not None and index >= cfg.limit:
            return
        key = row.get(cfg.id_field) if cfg.id_field else index
        yield Record(
            problem_id=f"{label}:{key}",
            source=label,
            problem=row[cfg.question_field],
            gold=gold_answer(row.get(cfg.answer_field)),
            meta={"raw_answer": row.get(cfg.answer_field)},
        )
