"""The generation stage: each problem record becomes `teacher.n` sample records, exactly once.

For every problem it derives the sample ids, takes the ones the generation store already
holds, and asks the teacher only for the rest. Results are journaled the moment they arrive,
in whatever order the backend finishes them, but records leave this stage in problem order,
so everything downstream — and the published shards — is independent of timing. A request
whose retries ran out becomes a tombstone: counted (`teacher_<error>` in rejects), excluded
from the output, and asked again only with `retry_failed`.

The teacher is loaded on the first request: a rerun with nothing missing never loads it. With a
budget, no new problem is started once the cost of every stored sample reaches it (requests
already in flight still land), and the run publishes what it has.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from factory.crash import crash_point
from factory.progress import RunProgress
from factory.prompt import PromptBuilder
from factory.recipe import Price, TeacherConfig
from factory.record import Message, Record, sample_id
from factory.stage import Drop, Stage
from factory.storage.generations import GenerationStore
from factory.teachers.base import Failure, Request, Sample, Teacher

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    """One problem waiting for its samples; `results[k]` is None while sample k is pending."""

    problem: Record
    messages: list[Message]
    results: dict[int, Record | Failure | dict | None] = field(default_factory=dict)

    def ready(self) -> bool:
        return all(r is not None for r in self.results.values())


def request_seed(request_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{request_id}".encode()).digest()[:4], "big")


class Generate(Stage):
    name = "generate"

    def __init__(
        self,
        teacher: Callable[[], Teacher],
        cfg: TeacherConfig,
        prompts: PromptBuilder,
        fingerprint: str,
        store: GenerationStore,
        retry_failed: bool = False,
        price: Price | None = None,
        budget_usd: float | None = None,
    ) -> None:
        super().__init__()
        self._load_teacher, self._teacher = teacher, None
        self.cfg, self.prompts, self.fingerprint = cfg, prompts, fingerprint
        self.store, self.retry_failed = store, retry_failed
        self.prompt_tokens = self.completion_tokens = 0  # over new samples, kept or not
        self.requested = self.reused = self.failed = 0
        self.seconds_in_teacher = 0.0
        self.price, self.budget_usd = price or Price(), budget_usd
        # the budget covers every stored sample of this generation, not just this attempt
        self.cost_stored = sum(
            self.price.cost(r.prompt_tokens or 0, r.completion_tokens or 0)
            for r in store.samples.values()
        )
        self.cost_new = 0.0
        self.budget_exhausted = False
        self.progress: RunProgress | None = None  # set by the caller that displays it
        # sample indices asked per problem; None = 0 … n-1 (adaptive rounds set later ranges)
        self.sample_range: range | None = None
        self._slots: deque[_Slot] = deque()
        self._pending: dict[str, tuple[_Slot, int]] = {}

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            self._teacher = self._load_teacher()
        return self._teacher

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        requests = self._requests(records)
        first = next(requests, None)  # no request at all: never load the teacher
        if first is not None:
            teacher = self.teacher  # load before the clock starts: tok/s is generation only
            if self.progress is not None:
                self.progress.begin()
            started = time.perf_counter() - self.seconds_in_teacher  # adaptive rounds add up
            stream = teacher.generate(_chain(first, requests), self.cfg)
            for request, result in stream:
                self._record_result(request, result)
                yield from self._ready()
                self.seconds_in_teacher = time.perf_counter() - started
                self._log_progress()
        yield from self._ready()

    def _requests(self, records: Iterable[Record]) -> Iterator[Request]:
        for problem in records:
            if self.budget_usd is not None and self.cost_stored + self.cost_new >= self.budget_usd:
                # stop cleanly: no new problems; requests already in flight still land
                self.budget_exhausted = True
                log.warning("budget of $%.4f reached: no new requests", self.budget_usd)
                return
            training = self.prompts.training_messages(problem.problem)
            slot = _Slot(problem, training)
            self._slots.append(slot)
            teacher_messages = tuple(self.prompts.teacher_messages(training))
            indices = range(self.cfg.n) if self.sample_range is None else self.sample_range
            # every slot of the problem is filled in before its first request goes out: a
            # teacher that answers each request as it pulls it must not find the problem
            # "ready" while its later samples have not been asked yet
            ask = []
            for k in indices:
                rid = sample_id(problem.problem_id, k, self.fingerprint)
                if rid in self.store.samples:
                    slot.results[k] = self.store.samples[rid]
                    self.reused += 1
                elif rid in self.store.failures and not self.retry_failed:
                    slot.results[k] = self.store.failures[rid]
                else:
                    slot.results[k] = None
                    self._pending[rid] = (slot, k)
                    ask.append((rid, k))
            for rid, k in ask:
                self.requested += 1
                self.store.mark_sent(rid)  # the teacher pulls it now: dispatched
                yield Request(rid, teacher_messages, k, request_seed(rid, self.cfg.seed))

    def _record_result(self, request: Request, result: Sample | Failure) -> None:
        crash_point("response_received")
        slot, k = self._pending.pop(request.id)
        if isinstance(result, Failure):
            self.store.add_failure(request.id, result.error, result.detail, result.attempts)
            slot.results[k] = self.store.failures[request.id]
            return
        record = dataclasses.replace(
            slot.problem,
            id=request.id,
            sample_index=k,
            messages=list(slot.messages),
            completion=result.text,
            teacher_model=self.teacher.model_name,
            temperature=self.cfg.temperature,
            top_p=self.cfg.top_p,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            finish_reason=result.finish_reason,
            generation_fingerprint=self.fingerprint,
            dedup_cluster=None,  # problem-level clusters stay with the problem
            meta={**slot.problem.meta, **({"server_reasoning": True} if result.reasoning else {})},
        )
        self.store.add(record)
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        self.cost_new += self.price.cost(result.prompt_tokens, result.completion_tokens)
        slot.results[k] = record

    def _ready(self) -> Iterator[Record]:
        """Yield finished problems from the front, in problem order."""
        while self._slots and self._slots[0].ready():
            slot = self._slots.popleft()
            for k in sorted(slot.results):
                result = slot.results[k]
                if isinstance(result, Record):
                    # a copy: filters downstream set fields on what they get; the store's own
                    # record (sealed later) must stay the teacher's answer as it came
                    yield copy.copy(result)
                else:  # a tombstone: counted and sent to rejects, never to the output
                    self.failed += 1
                    tomb = dataclasses.replace(
                        slot.problem,
                        id=result["id"],
                        sample_index=k,
                        messages=list(slot.messages),
                        generation_fingerprint=self.fingerprint,
                        meta={**slot.problem.meta, "teacher_error": result["detail"]},
                    )
                    self.drop(tomb, Drop(f"teacher_{result['error']}"))

    def _log_progress(self) -> None:
        if self.progress is not None:
            done = self.requested - len(self._pending)
            self.progress.update(done, self.completion_tokens, self.cost_stored + self.cost_new)

    def close(self) -> None:
        if self._teacher is not None:
            self._teacher.close()


def _chain(first: Request, rest: Iterator[Request]) -> Iterator[Request]:
    yield first
    yield from rest
