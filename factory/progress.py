"""Live progress of a run: samples done of expected, requests/s, output tokens/s, acceptance
so far, cost and ETA. On a terminal it is a rich progress bar; otherwise (logs, CI, pipes) a
plain log line every `interval_s` seconds, so logs stay readable and free of escape codes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger("factory.progress")


class RunProgress:
    def __init__(
        self,
        expected_new: int,
        acceptance: Callable[[], float | None],
        console=None,
        interval_s: float = 10.0,
    ) -> None:
        self.expected_new, self.acceptance = max(expected_new, 0), acceptance
        self.console, self.interval_s = console, interval_s
        self.started = time.monotonic()
        self._begun = False
        self._last_log = 0.0
        self._bar = self._task = None

    def __enter__(self) -> RunProgress:
        if self.console is not None and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("generate"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[line]}"),
                console=self.console,
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("generate", total=self.expected_new or None, line="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def begin(self) -> None:
        """The teacher is ready: rates count from now, not from model loading (adaptive
        sampling calls this once per round; the first call counts)."""
        if not self._begun:
            self.started, self._begun = time.monotonic(), True

    def update(self, done: int, completion_tokens: int, cost: float) -> None:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        accepted = self.acceptance()
        line = (
            f"{done / elapsed:.1f} req/s  {completion_tokens / elapsed:.0f} tok/s  "
            f"accepted {'–' if accepted is None else f'{accepted:.0%}'}  ${cost:.4f}"
        )
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=self.expected_new or None, line=line)
        elif now - self._last_log >= self.interval_s or done == self.expected_new:
            self._last_log = now
            eta = (self.expected_new - done) / (done / elapsed) if done else float("nan")
            log.info(
                "generate: %d/%d new samples, %s, eta %.0f s", done, self.expected_new, line, eta
            )
