"""The stage that stands in for generation when a recipe re-verifies existing traces.

With `source.completion_field` set, every source row already holds a model's output, so no
teacher is asked: each row becomes a sample record (its id from `source.id_field`, its sample
index counting the traces of the same problem, the training prompt built from the recipe's
prompt files) and flows on through parse, filters, verify and dedup exactly like a generated
sample. It offers the same accounting attributes as the generation stage, all zero.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

from factory.prompt import PromptBuilder
from factory.record import Record
from factory.stage import Stage


class Traces(Stage):
    name = "traces"

    def __init__(self, prompts: PromptBuilder) -> None:
        super().__init__()
        self.prompts = prompts
        self.requested = self.reused = self.failed = 0
        self.prompt_tokens = self.completion_tokens = 0
        self.seconds_in_teacher = self.cost_stored = self.cost_new = 0.0
        self.budget_exhausted = False
        self.progress = None

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        seen: Counter[str] = Counter()
        for record in records:
            record.sample_index = seen[record.problem_id]
            seen[record.problem_id] += 1
            record.messages = self.prompts.training_messages(record.problem)
            record.finish_reason = record.finish_reason or "stop"  # unknown: not a truncation
            yield record
