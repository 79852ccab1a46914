"""Problems from a Hugging Face `datasets` name (needs the network or a warm local cache)."""

from __future__ import annotations

from collections.abc import Iterator

from factory.errors import ProblemSourceError
from factory.problems.mapping import UniqueIds, check_columns, check_row, row_to_record
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
    check_columns(cfg, f"dataset '{cfg.name}'", ds.column_names)
    return ds


def check(cfg: SourceConfig) -> int:
    ds = _load(cfg)
    count = len(ds) if cfg.limit is None else min(cfg.limit, len(ds))
    ids = UniqueIds(cfg)
    for index in range(count):
        check_row(cfg, f"dataset '{cfg.name}' row {index}", ds[index])
        ids.check(f"dataset '{cfg.name}' row {index}", ds[index])
    return count


def read(cfg: SourceConfig) -> Iterator[Record]:
    ds = _load(cfg)
    label = cfg.label or cfg.name
    for index, row in enumerate(ds):
        if cfg.limit is not None and index >= cfg.limit:
            return
        yield row_to_record(cfg, label, index, row)
