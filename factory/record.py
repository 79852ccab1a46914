"""The one record that flows through every stage, and its parquet schema.

A `Record` starts life as a problem (no sample yet), the teacher expands it into one record
per sample, and later stages fill in the parsed answer, the verdict and the dedup cluster.
Fields that are not known yet are `None`. Anything a stage wants to keep that is not a column
goes into `meta` (written as a JSON string, so the schema never changes under a reader).

Run-level columns (`recipe`, `recipe_fingerprint`, `run_id`) are constants of a run and are
added by the writer, not carried on every record.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": str}


@dataclass(slots=True)
class Record:
    # --- the problem -------------------------------------------------------------------
    problem_id: str
    source: str
    problem: str
    gold: str | None
    # "reasoning" (a chain-of-thought trace), "knowledge" (a direct answer, no long reasoning)
    # or "journey" (a wrong attempt, its detection and the correction, built from two traces)
    kind: str = "reasoning"
    pseudo_label: bool = False  # gold is a majority vote of the samples, not the source's
    # --- one teacher sample (None until the teacher has answered) ---------------------
    id: str | None = None
    sample_index: int | None = None
    messages: list[Message] = field(default_factory=list)
    completion: str | None = None
    teacher_model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    generation_fingerprint: str | None = None
    # --- parse / verify / dedup ---------------------------------------------------------
    reasoning: str | None = None
    answer: str | None = None
    verdict: str | None = None
    # every verifier's say: [{"verifier": "math", "verdict": "pass", "reason": "exact_number"}]
    verdicts: list[dict[str, str]] = field(default_factory=list)
    dedup_cluster: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        """This record as a parquet row (meta serialized to JSON). A shallow copy: rows are
        written at once and never mutated (dataclasses.asdict's deep copy cost more than the
        rest of a run's bookkeeping together)."""
        out = {name: getattr(self, name) for name in RECORD_FIELDS}
        out["messages"] = [dict(m) for m in self.messages]
        out["verdicts"] = [dict(v) for v in self.verdicts]
        out["meta"] = json.dumps(self.meta, sort_keys=True, ensure_ascii=False, default=str)
        return out

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Record:
        """The record a parquet row was written from (extra columns are ignored)."""
        values = {k: v for k, v in row.items() if k in RECORD_FIELDS}
        meta = row.get("meta")
        values["meta"] = json.loads(meta) if isinstance(meta, str) else meta or {}
        values["messages"] = [dict(m) for m in values.get("messages") or []]
        values["verdicts"] = [dict(v) for v in values.get("verdicts") or []]
        return cls(**values)


RECORD_FIELDS = tuple(f.name for f in fields(Record))


def sample_id(problem_id: str, sample_index: int, generation_fingerprint: str) -> str:
    """Stable id of one teacher sample: same problem, index and generation settings → same id."""
    key = f"{problem_id}\x00{sample_index}\x00{generation_fingerprint}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def arrow_schema(extra: dict[str, str] | None = None):
    """The parquet schema of kept traces; `extra` adds string columns (e.g. rejects' `stage`)."""
    import pyarrow as pa

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    verdict = pa.struct(
        [("verifier", pa.string()), ("verdict", pa.string()), ("reason", pa.string())]
    )
    cols = [
        ("id", pa.string()),
        ("problem_id", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("problem", pa.string()),
        ("gold", pa.string()),
        ("pseudo_label", pa.bool_()),
        ("sample_index", pa.int32()),
        ("messages", pa.list_(message)),
        ("completion", pa.string()),
        ("reasoning", pa.string()),
        ("answer", pa.string()),
        ("verdict", pa.string()),
        ("verdicts", pa.list_(verdict)),
        ("teacher_model", pa.string()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("generation_fingerprint", pa.string()),
        ("dedup_cluster", pa.string()),
        ("meta", pa.string()),
        ("recipe", pa.string()),
        ("recipe_fingerprint", pa.string()),
        ("run_id", pa.string()),
    ]
    cols += [(name, pa.string()) for name in (extra or {})]
    return pa.schema(cols)
