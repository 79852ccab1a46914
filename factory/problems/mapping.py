"""One source row → one problem record, through the recipe's column mapping.

Shared by the file and hub sources so both name ids, pick columns and read gold the same way.
"""

from __future__ import annotations

from typing import Any

from factory.errors import ProblemSourceError
from factory.problems.gold import gold_answer
from factory.recipe import SourceConfig
from factory.record import Record


def row_to_record(cfg: SourceConfig, label: str, index: int, row: dict[str, Any]) -> Record:
    key = row.get(cfg.id_field) if cfg.id_field else index
    return Record(
        problem_id=f"{label}:{key}",
        source=label,
        problem=row[cfg.question_field],
        gold=gold_answer(row.get(cfg.answer_field)),
        meta={"raw_answer": row.get(cfg.answer_field)},
    )


def check_row(cfg: SourceConfig, where: str, row: dict[str, Any]) -> None:
    """Raise a clear error for a row that cannot become a problem (gold may be missing)."""
    question = row.get(cfg.question_field)
    if not isinstance(question, str) or not question.strip():
        raise ProblemSourceError(
            f"{where}: '{cfg.question_field}' is missing or not text in this row"
        )


def check_columns(cfg: SourceConfig, where: str, columns: list[str]) -> None:
    for key in (cfg.question_field, cfg.answer_field):
        if key not in columns:
            raise ProblemSourceError(
                f"{where}: column '{key}' not found (columns: {', '.join(columns)}); "
                "set source.question_field / source.answer_field"
            )
