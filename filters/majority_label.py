"""Majority-vote pseudo-labels for problems without gold (NeMo-Skills' self-consistency).

Runs after parsing and before verification. Samples of problems that have gold pass straight
through. Samples of problems without gold are held (spilled to disk) until the input ends;
then each such problem's parsed final answers vote (filters/select.py `majority_vote`:
spelling-insensitive keys, the top answer needs `min_share` of the problem's parsed answers,
a tie for first place gives no label). With a label, every sample gets `gold` = the label and
`pseudo_label` = true, and verification then keeps the samples that agree with it; without
one, the problem's samples are dropped as `no_majority`. `meta.majority` records the share and
the number of votes.

The vote counts parsed samples only: a sample dropped before this stage (truncated, no answer)
has no answer to vote with. Self-consistency labels are only as good as the teacher's
agreement: a confidently wrong teacher produces confident wrong labels, which is why rows say
they are pseudo-labelled.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from factory.recipe import MajorityVoteConfig
from factory.record import Record
from factory.stage import Drop, Stage
from factory.storage.spill import Spill
from filters.select import majority_vote


class MajorityLabel(Stage):
    name = "majority_vote"

    def __init__(self, cfg: MajorityVoteConfig, workdir: Path | None = None) -> None:
        super().__init__()
        self.cfg, self.workdir = cfg, workdir
        self.summary: dict[str, int] = {}

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        spill = Spill(self.workdir, self.name)
        try:
            answers: dict[str, list[str | None]] = defaultdict(list)
            for record in records:
                if record.gold is not None and record.gold.strip():
                    yield record
                    continue
                spill.add(record)
                answers[record.problem_id].append(record.answer)
            labels = {
                pid: majority_vote(votes, self.cfg.min_share) for pid, votes in answers.items()
            }
            self.summary = {
                "problems_without_gold": len(labels),
                "labelled": sum(label is not None for label, _ in labels.values()),
                "no_majority": sum(label is None for label, _ in labels.values()),
            }
            for record in spill.replay():
                label, share = labels[record.problem_id]
                votes = len(answers[record.problem_id])
                record.meta = {
                    **record.meta,
                    "majority": {"share": round(share, 6), "votes": votes},
                }
                if label is None:
                    self.drop(record, Drop("no_majority"))
                    continue
                record.gold, record.pseudo_label = label, True
                yield record
        finally:
            spill.close()

    def report(self) -> dict[str, int]:
        return dict(self.summary)
