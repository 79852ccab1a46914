"""An LLM judge as a verifier: any teacher backend asked whether a final answer is correct.

The prompt is a file (`verify.judge.prompt`, default recipes/prompts/judge.txt) with
`{problem}`, `{gold}`, `{answer}` and `{completion}` slots (only the last
`max_completion_chars` of the trace, where the conclusion is). The reply's last `CORRECT` or
`INCORRECT` decides: `pass` (`judge_correct`), `fail` (`judge_incorrect`); a reply with
neither is `unverifiable` (`judge_unclear`); a request whose retries ran out is `error`
(`judge_<error>`), never counted against the trace. The judge's teacher is loaded on first
use, so a run whose records all fail earlier never loads it.
"""

from __future__ import annotations

import hashlib
import re

from factory.recipe import JudgeConfig
from factory.record import Record
from factory.teachers.base import Failure, Request, Teacher

_VERDICT = re.compile(r"\b(INCORRECT|CORRECT)\b")


def judge_verdict(reply: str) -> tuple[str, str]:
    found = _VERDICT.findall(reply or "")
    if not found:
        return "unverifiable", "judge_unclear"
    return ("pass", "judge_correct") if found[-1] == "CORRECT" else ("fail", "judge_incorrect")


class JudgeChecker:
    name = "judge"

    def __init__(self, cfg: JudgeConfig, prompt: str) -> None:
        self.cfg, self.prompt = cfg, prompt
        self._teacher: Teacher | None = None

    @property
    def teacher(self) -> Teacher:
        if self._teacher is None:
            from factory.teachers import load_teacher

            self._teacher = load_teacher(self.cfg.teacher)
        return self._teacher

    def _request(self, record: Record, i: int) -> Request:
        text = (
            self.prompt.replace("{problem}", record.problem or "")
            .replace("{gold}", record.gold or "")
            .replace("{answer}", record.answer or "")
            .replace("{completion}", (record.completion or "")[-self.cfg.max_completion_chars :])
        )
        rid = f"{record.id or record.problem_id}:judge:{i}"
        seed = int.from_bytes(hashlib.sha256(rid.encode()).digest()[:4], "big")
        return Request(rid, ({"role": "user", "content": text},), 0, seed)

    def check(self, records: list[Record]) -> list[tuple[str, str]]:
        requests = [self._request(r, i) for i, r in enumerate(records)]
        index = {req.id: i for i, req in enumerate(requests)}
        out: list[tuple[str, str]] = [("error", "judge_no_reply")] * len(records)
        for request, result in self.teacher.generate(requests, self.cfg.teacher):
            if isinstance(result, Failure):
                out[index[request.id]] = ("error", f"judge_{result.error}")
            else:
                out[index[request.id]] = judge_verdict(result.text)
        return out

    def close(self) -> None:
        if self._teacher is not None:
            self._teacher.close()
