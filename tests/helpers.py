"""Helpers shared by tests that run the installed `factory` command as a user would."""

from __future__ import annotations

import os
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
