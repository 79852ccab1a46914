"""Adaptive sampling: ask the teacher in rounds and stop each problem as soon as it has enough.

Round r asks `teacher.n` more samples (sample indices r·n … r·n+n-1) of every problem that
still has fewer than `select.k` verified samples and has not spent `select.adaptive.
max_samples`; the round's samples go through the checks (parse, quality filters, verify) and
the verified ones go on downstream. Easy problems stop after one round, so the budget goes to
the problems where more samples help.

This is one stage wrapping the generation stage and the checks, because the next round needs
the verdicts of the last one: records still flow one way, the loop is over rounds. The inner
stages keep their own names and counts (the manifest lists them, not this wrapper), drops go
to the run's reject sink as usual, and every sample keeps its stable id, so a resumed run
replays the same rounds from the stored samples and asks only for what is missing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from factory.generate import Generate
from factory.record import Record
from factory.stage import Stage, chain


class Rounds(Stage):
    name = "rounds"

    def __init__(self, generate: Generate, checks: list[Stage], k: int, max_samples: int) -> None:
        super().__init__()
        self.generate, self.checks = generate, checks
        self.inner: list[Stage] = [generate, *checks]
        self.k, self.max_samples, self.per_round = k, max_samples, generate.cfg.n
        self.rounds: list[dict[str, int]] = []
        self.spent: Counter = Counter()  # samples asked per problem
        self.verified: Counter = Counter()

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        active = list(records)  # problem records (no samples yet): small
        start = 0
        while active and start < self.max_samples:
            size = min(self.per_round, self.max_samples - start)
            if start and self.generate.progress is not None:  # the bar's total grows per round
                self.generate.progress.expected_new += size * len(active)
            self.generate.sample_range = range(start, start + size)
            stream, _ = chain(iter(active), self.inner, self.on_drop, rank, world_size)
            for record in stream:
                self.verified[record.problem_id] += 1
                yield record
            for problem in active:
                self.spent[problem.problem_id] += size
            start += size
            done = [p for p in active if self.verified[p.problem_id] >= self.k]
            self.rounds.append(
                {"problems": len(active), "samples": size * len(active), "done": len(done)}
            )
            active = [p for p in active if self.verified[p.problem_id] < self.k]
        self.generate.sample_range = None

    def report(self) -> dict[str, Any]:
        problems = len(self.spent)
        reached = sum(self.verified[p] >= self.k for p in self.spent)
        histogram = Counter(self.spent.values())
        return {
            "samples_per_round": self.per_round,
            "max_samples": self.max_samples,
            "rounds": self.rounds,
            "problems": problems,
            "stopped_with_k": reached,  # k samples verified before the budget ran out
            "stopped_by_budget": problems - reached,
            "samples_asked": sum(self.spent.values()),
            "samples_without_adaptive": problems * self.max_samples,
            # samples asked → number of problems that spent that many
            "samples_per_problem": {str(n): c for n, c in sorted(histogram.items())},
        }
