"""The generation stage: each problem record becomes `n` sample records from the teacher.

Problems are grouped so that one teacher call carries about `teacher.batch_size` sequences
(`batch_size // n` prompts × n samples), which is what keeps a CPU or GPU busy.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from itertools import islice

from factory.prompt import PromptBuilder
from factory.recipe import TeacherConfig
from factory.record import Record, sample_id
from factory.stage import Stage
from factory.teachers.base import Teacher

log = logging.getLogger(__name__)


class Generate(Stage):
    name = "generate"

    def __init__(
        self, teacher: Teacher, cfg: TeacherConfig, prompts: PromptBuilder, fingerprint: str
    ):
        super().__init__()
        self.teacher, self.cfg, self.prompts, self.fingerprint = teacher, cfg, prompts, fingerprint
        self.prompt_tokens = self.completion_tokens = 0  # over every sample, kept or not

    def run(
        self, records: Iterable[Record], rank: int = 0, world_size: int = 1
    ) -> Iterator[Record]:
        per_call = max(1, self.cfg.batch_size // self.cfg.n)
        it = iter(records)
        batch_index, started = 0, time.perf_counter()
        while batch := list(islice(it, per_call)):
            training = [self.prompts.training_messages(r.problem) for r in batch]
            teacher_prompts = [self.prompts.teacher_messages(m) for m in training]
            samples = self.teacher.generate(teacher_prompts, self.cfg, batch_index)
            batch_index += 1
            for outs in samples:
                self.prompt_tokens += sum(s.prompt_tokens for s in outs)
                self.completion_tokens += sum(s.completion_tokens for s in outs)
            elapsed = time.perf_counter() - started
            log.info(
                "generate: batch %d, %d problems, %d samples so far, %.1f completion tok/s",
                batch_index,
                self.stats.inputs,
                self.stats.inputs * self.cfg.n,
                self.completion_tokens / max(elapsed, 1e-9),
            )
            for problem, messages, outs in zip(batch, training, samples, strict=True):
                for k, sample in enumerate(outs):
                    yield dataclasses.replace(
                        problem,
                        id=sample_id(problem.problem_id, k, self.fingerprint),
                        sample_index=k,
                        messages=list(messages),
                        completion=sample.text,
                        teacher_model=self.teacher.model_name,
                        temperature=self.cfg.temperature,
                        top_p=self.cfg.top_p,
                        prompt_tokens=sample.prompt_tokens,
                        completion_tokens=sample.completion_tokens,
                        finish_reason=sample.finish_reason,
                        generation_fingerprint=self.fingerprint,
                        dedup_cluster=None,  # problem-level clusters stay with the problem
                        meta=dict(problem.meta),
                    )
