"""What every teacher backend offers: chat prompts in, n samples per prompt out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from factory.record import Message


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)


class Teacher(Protocol):
    model_name: str

    def generate(
        self, prompts: list[list[Message]], n: int, batch_index: int
    ) -> list[list[Sample]]:
        """n samples for each prompt, in prompt order. `batch_index` seeds sampling."""
        ...

    def close(self) -> None: ...
