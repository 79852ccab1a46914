"""Helpers shared by tests that run the installed `factory` command as a user would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FACTORY = str(Path(sys.executable).parent / "factory")


def factory(
    *args: str, cwd: Path = REPO, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FACTORY, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def problems_file(path: Path, count: int) -> Path:
    """`count` distinct "Calculate a + b." problems with their gold answers."""
    import json

    lines = []
    for i in range(count):
        a, b = i // 50, i % 50 + 1
        lines.append(
            json.dumps({"id": f"q{i}", "question": f"Calculate {a} + {b}.", "answer": str(a + b)})
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def file_overrides(problems: Path, **extra: str) -> list[str]:
    """math-cot over a problems file, answered by a test teacher named `fake` (pass it to
    `run_recipe(..., teacher=...)`); `extra` holds more dotted keys."""
    keys = {
        "source.kind": "file",
        "source.path": str(problems),
        "source.id_field": "id",
        "source.limit": "null",
        "teacher.model": "fake",
        "prompt.fewshot": "null",
        **extra,
    }
    return [f"{k}={v}" for k, v in keys.items()]


def loopback_overrides(url: str, problems: Path, **extra: str) -> list[str]:
    """math-cot over a problems file with the openai backend on a loopback server."""
    return file_overrides(
        problems, **{"teacher.backend": "openai", "teacher.base_url": url, **extra}
    )


def trace(completion: str | None, finish: str = "stop", **fields):
    """A generated sample record, as the filters after `generate` receive it."""
    from factory.record import Record

    base = {
        "problem_id": "p",
        "source": "s",
        "problem": "q",
        "gold": "1",
        "id": "x",
        "completion": completion,
        "finish_reason": finish,
        "messages": [{"role": "user", "content": "q"}],
    }
    return Record(**{**base, **fields})


class CannedTeacher:
    """Code for code problems, a city for questions, else the last number of the problem
    (sample 0) or 42 (sample 1), always inside a think block."""

    model_name = "canned"

    def generate(self, requests, cfg):
        from factory.teachers.base import Sample

        for request in requests:
            user = request.messages[-1]["content"]
            if "def " in user:
                body = "```python\ndef solution(*args):\n    return None\n```"
            elif re.search(r"\b(capital|Who|What|Which)\b", user):
                body = "Paris"
            else:
                numbers = re.findall(r"\d+", user)
                guess = numbers[-1] if numbers and request.sample_index == 0 else "42"
                body = f"The answer is \\boxed{{{guess}}}."
            text = f"<think>\nReading the problem carefully, step {request.sample_index}.\n</think>\n\n{body}"
            yield request, Sample(text, 40, 25, "stop")

    def close(self) -> None:
        pass
