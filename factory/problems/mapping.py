"""One source row → one problem record, through the recipe's column mapping.

Shared by the file and hub sources so both name ids, pick columns and read gold the same way.
"""

from __future__ import annotations

import hashlib
from typing import Any

from factory.errors import ProblemSourceError
from factory.problems.gold import gold_answer
from factory.recipe import SourceConfig
from factory.record import Record


def row_to_record(cfg: SourceConfig, label: str, index: int, row: dict[str, Any]) -> Record:
    key = row.get(cfg.id_field) if cfg.id_field else index
    record = Record(
        problem_id=f"{label}:{key}",
        source=label,
        problem=row[cfg.question_field],
        gold=gold_answer(row.get(cfg.answer_field)),
        meta={"raw_answer": row.get(cfg.answer_field)},
    )
    if cfg.difficulty_field and row.get(cfg.difficulty_field) is not None:
        record.meta["difficulty"] = str(row[cfg.difficulty_field])  # factory report groups by it
    if cfg.completion_field:  # a trace to re-verify: rows of one problem share its problem id
        digest = hashlib.sha256(record.problem.encode("utf-8", "replace")).hexdigest()[:12]
        record.problem_id = f"{label}:p{digest}"
        record.id = f"{label}:{key}"
        record.completion = row.get(cfg.completion_field)
        if cfg.label_field:
            record.meta["label"] = row.get(cfg.label_field)
    return record


class UniqueIds:
    """Traces to re-verify need unique ids (`source.id_field`): each is one output row."""

    def __init__(self, cfg: SourceConfig) -> None:
        self.cfg, self.seen = cfg, {}

    def check(self, where: str, row: dict[str, Any]) -> None:
        if not (self.cfg.completion_field and self.cfg.id_field):
            return
        key = row.get(self.cfg.id_field)
        if key in self.seen:
            raise ProblemSourceError(
                f"{where}: source.id_field '{self.cfg.id_field}' value {str(key)[:80]!r} was "
                f"already used at {self.seen[key]}; traces need unique ids (choose another "
                "column, or leave source.id_field unset to number the rows)"
            )
        self.seen[key] = where


def check_row(cfg: SourceConfig, where: str, row: dict[str, Any]) -> None:
    """Raise a clear error for a row that cannot become a problem (gold may be missing)."""
    question = row.get(cfg.question_field)
    if not isinstance(question, str) or not question.strip():
        raise ProblemSourceError(
            f"{where}: '{cfg.question_field}' is missing or not text in this row"
        )


def check_columns(cfg: SourceConfig, where: str, columns: list[str]) -> None:
    wanted = {"question_field": cfg.question_field, "answer_field": cfg.answer_field}
    if cfg.completion_field:
        wanted["completion_field"] = cfg.completion_field
    if cfg.label_field:
        wanted["label_field"] = cfg.label_field
    if cfg.difficulty_field:
        wanted["difficulty_field"] = cfg.difficulty_field
    for setting, key in wanted.items():
        if key not in columns:
            raise ProblemSourceError(
                f"{where}: column '{key}' not found (columns: {', '.join(columns)}); "
                f"set source.{setting}"
            )
