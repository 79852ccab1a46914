"""What every teacher backend offers: sample requests in, results out as they complete.

A `Request` is one sample (one problem, one sample index) with a stable id — the unit of
exactly-once accounting. Backends group requests as they like (a batch on a GPU or CPU,
concurrent HTTP calls, `n` samples of one prompt in a single call) and yield each result as
soon as it is known, in any order. A request that cannot be served after the backend's
retries yields a `Failure` (a tombstone), never an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from factory.recipe import TeacherConfig
from factory.record import Message


@dataclass(frozen=True, slots=True)
class Request:
    id: str  # stable sample id (problem id, sample index, generation fingerprint)
    messages: tuple[Message, ...]  # what the teacher sees (few-shot turns included)
    sample_index: int
    seed: int  # derived from the id: a request samples the same way in any batch or order


@dataclass(frozen=True, slots=True)
class Sample:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" (ended by itself) or "length" (hit max_new_tokens)
    reasoning: str | None = None  # a server's separate reasoning channel, if it has one


@dataclass(frozen=True, slots=True)
class Failure:
    error: (
        str  # short code: "rate_limited", "server_error", "timeout", "connection", "bad_response"
    )
    detail: str
    attempts: int


class Teacher(Protocol):
    model_name: str

    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample | Failure]]:
        """Serve `requests` with the sampling settings of `cfg` (passed per call, so one loaded
        model can serve recipes that sample differently); yield each result when it is known."""
        ...

    def close(self) -> None: ...
