"""Rejection sampling as a stage: up to `select.k` verified samples per problem, and only for
problems whose pass rate lies in the `select.pass_rate` window (open-r1 keeps 10–60%).

A barrier: the choice for a problem depends on all of its samples. Verified samples arrive as
the stage's input; the samples that failed somewhere upstream never reach it, so the pipeline
reports every drop to `observe_drop` and the stage counts them per problem (a sample dropped
after verification, e.g. a duplicate of a verified one, still counts as solved). Teacher
failures (tombstones) are not samples and are not counted. The pass rate of a problem is
verified samples / samples generated for it.

Records are spilled to disk (factory/storage/spill.py); memory holds one small `Sample` per
verified sample and two counters per problem. The policies themselves are plain functions in
filters/select.py. Kept rows get `meta.pass_rate` and `meta.samples` (samples generated for
the problem); dropped ones say why: `pass_rate_below_window`, `pass_rate_above_window`,
`not_selected` (a verified sample beyond the k best).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from factory.recipe import SelectConfig
from factory.record import Record
from factory.stage import Drop, Stage
from factory.storage.spill import Spill
from filters.length import approx_tokens
from filters.select import Sample, pick

# drops by these stages are not samples: teacher failures, and rows that were never samples
_NOT_SAMPLES = frozenset({"generate", "traces", "has_gold", "dedup_problems"})


def sample_length(record: Record) -> int:
    if record.completion_tokens is not None:
        return record.completion_tokens
    return approx_tokens(record.completion or "")


class Select(Stage):
    name = "select"

    def __init__(self, cfg: SelectConfig, workdir: Path | None = None) -> None:
        super().__init__()
        self.cfg, self.workdir = cfg, workdir
        self.generated: Counter = Counter()  # samples per problem that reached any verdict
        self.passed: Counter = Counter()
        self._open = True  # drops after the decision (e.g. journey rows) are not samples
        self.summary: dict[str, Any] = {}

    def observe_drop(self, record: Record, stage: str, drop: Drop) -> None:
        if not self._open or record.id is None or stage in _NOT_SAMPLES:
            return
        if stage.startswith("decontaminate_problems"):
            return
        self.generated[record.problem_id] += 1
        self.passed[record.problem_id] += record.verdict == "pass"

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        spill = Spill(self.workdir, self.name)
        try:
            samples: dict[str, list[Sample]] = defaultdict(list)
            for record in records:
                spill.add(record)
                self.generated[record.problem_id] += 1
                self.passed[record.problem_id] += 1
                samples[record.problem_id].append(
                    Sample(
                        record.id, record.problem_id, "pass", record.answer, sample_length(record)
                    )
                )
            self._open = False
            keep, verdict = self._decide(samples)
            for record in spill.replay():
                pid = record.problem_id
                rate = self.passed[pid] / self.generated[pid]
                record.meta = {
                    **record.meta,
                    "pass_rate": round(rate, 6),
                    "samples": self.generated[pid],
                }
                if verdict[pid] is not None:
                    self.drop(record, Drop(verdict[pid]))
                elif record.id in keep:
                    yield record
                else:
                    self.drop(record, Drop("not_selected"))
        finally:
            spill.close()

    def _decide(self, samples: dict[str, list[Sample]]) -> tuple[set[str], dict[str, str | None]]:
        """The ids kept, and per problem None (in the window) or the reason it is out."""
        low, high = self.cfg.pass_rate
        keep: set[str] = set()
        verdict: dict[str, str | None] = {}
        rates = []
        for pid, group in samples.items():
            rate = self.passed[pid] / self.generated[pid]
            rates.append(rate)
            if rate < low:
                verdict[pid] = "pass_rate_below_window"
            elif rate > high:
                verdict[pid] = "pass_rate_above_window"
            else:
                verdict[pid] = None
                keep.update(s.id for s in pick(group, self.cfg.k, self.cfg.policy, self.cfg.seed))
        unsolved = [pid for pid in self.generated if self.passed[pid] == 0]
        out = Counter(v for v in verdict.values() if v)
        self.summary = {
            "k": self.cfg.k,
            "policy": self.cfg.policy,
            "pass_rate_window": [low, high],
            "problems_sampled": len(self.generated),
            "problems_unsolved": len(unsolved),  # no verified sample: nothing to keep
            "problems_below_window": out["pass_rate_below_window"],
            "problems_above_window": out["pass_rate_above_window"],
            "problems_kept": sum(v is None for v in verdict.values()),
            "samples_generated": sum(self.generated.values()),
            "samples_verified": sum(self.passed.values()),
            "traces_selected": len(keep),
            "samples_per_kept_trace": round(sum(self.generated.values()) / len(keep), 3)
            if keep
            else None,
            # pass rate of every problem with a sample, in tenths: 0.0 … 1.0
            "pass_rate_histogram": _histogram(rates + [0.0] * len(unsolved)),
        }
        return keep, verdict

    def report(self) -> dict[str, Any]:
        return dict(self.summary)


def _histogram(rates: list[float]) -> dict[str, int]:
    bins = Counter(f"{min(int(r * 10), 10) / 10:.1f}" for r in rates)
    return dict(sorted(bins.items()))
