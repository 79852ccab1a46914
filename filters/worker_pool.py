"""Killable worker processes with a hard wall-clock limit per item.

Why not `concurrent.futures.ProcessPoolExecutor`: it cannot kill one stuck task — a sympy
call that never returns would stall the pool forever. math-verify's own timeout uses
`signal.alarm`, which only works in a main thread and does not cover sympy hanging outside
its guarded calls (e.g. `str()` of a huge power tower). Here each worker is one process on a
socket pair (started by factory/child.py); the parent waits on all of them with a deadline, kills and replaces a worker that runs
past its item's limit, and carries on with the next item. Results are plain Python values
(strings, bools), so nothing risky is ever rebuilt or printed in the parent.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

from factory.child import child_connection, spawn_child

log = logging.getLogger(__name__)

TIMEOUT = object()  # marker result for an item whose worker was killed
CRASHED = object()  # marker result for an item whose worker died


def _serve(conn: Connection, target: str, memory_mb: int | None) -> None:
    if memory_mb:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    module, _, name = target.rpartition(".")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), name)
    while True:
        try:
            job = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if job is None:
            return
        try:
            result = fn(*job)
        except MemoryError:
            result = ("error", "verify_memory")
        conn.send(result)


class _Worker:
    def __init__(self, target: str, memory_mb: int | None):
        self.conn, self.proc = spawn_child("filters.worker_pool", target, str(memory_mb or 0))
        self.job: int | None = None
        self.deadline = 0.0

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.conn.close()


class WorkerPool:
    """Run `target(*args)` (a dotted function path) for each item in worker processes."""

    def __init__(self, target: str, workers: int, timeout_s: float, memory_mb: int | None = None):
        self.target, self.size, self.timeout_s, self.memory_mb = (
            target,
            workers,
            timeout_s,
            memory_mb,
        )
        self._workers: list[_Worker] = []
        self.killed = 0

    def _spawn(self) -> _Worker:
        return _Worker(self.target, self.memory_mb)

    def map(self, items: list[tuple]) -> list[Any]:
        """Results in item order; TIMEOUT or CRASHED where a worker had to be replaced."""
        while len(self._workers) < min(self.size, max(len(items), 1)):
            self._workers.append(self._spawn())
        results: list[Any] = [None] * len(items)
        todo = deque(range(len(items)))
        busy: dict[Connection, _Worker] = {}
        while todo or busy:
            for w in self._workers:
                if w.job is None and todo:
                    w.job = todo.popleft()
                    try:
                        w.conn.send(items[w.job])
                    except (BrokenPipeError, OSError):
                        self._replace(w, results, CRASHED)
                        continue
                    # the clock starts when the worker gets the item, not when it was queued
                    w.deadline = time.monotonic() + self.timeout_s
                    busy[w.conn] = w
            if not busy:
                continue
            wait_s = max(0.0, min(w.deadline for w in busy.values()) - time.monotonic())
            for conn in wait(list(busy), timeout=wait_s):
                w = busy.pop(conn)
                try:
                    results[w.job] = conn.recv()
                    w.job = None
                except (EOFError, OSError):
                    self._replace(w, results, CRASHED)
            now = time.monotonic()
            for conn, w in list(busy.items()):
                if now >= w.deadline:
                    del busy[conn]
                    self._replace(w, results, TIMEOUT)
        return results

    def _replace(self, w: _Worker, results: list[Any], marker: object) -> None:
        if w.job is not None:
            results[w.job] = marker
        w.kill()
        self.killed += 1
        self._workers[self._workers.index(w)] = self._spawn()

    def close(self) -> None:
        for w in self._workers:
            with contextlib.suppress(BrokenPipeError, OSError):
                w.conn.send(None)
        for w in self._workers:
            try:
                w.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(timeout=2)
            w.conn.close()
        self._workers = []


if __name__ == "__main__":  # a worker: python -m filters.worker_pool FD TARGET MEMORY_MB
    _serve(child_connection(sys.argv[1]), sys.argv[2], int(sys.argv[3]) or None)
