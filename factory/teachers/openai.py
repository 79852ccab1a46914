"""Any OpenAI-compatible chat endpoint (vLLM or SGLang servers, hosted APIs) as a teacher.

The official `openai` async client runs on an event loop in a child process
(factory/teachers/openai_client.py); the calling process keeps `teacher.concurrency` requests
in flight and yields each result as it lands, so the generation stage can journal it at once.
A process rather than a thread because both sides are CPU-bound Python: in one process the
client loop and the pipeline (journal, records, filters) shared one GIL and a run reached only
~0.7x the requests/s of a bare client loop (benchmarks/bench_openai.py). The child is started
with `python -m` (factory/child.py), so scripts that call factory need no `__main__` guard. Work crosses a socket pair in batches: requests as one list per refill, results as many
as have landed. If the parent dies (even `kill -9`) the child sees the socket close and exits. The client's own retries are off: retries here
are counted, jittered (full jitter on an exponential backoff), honour `Retry-After`, and cover
429, 5xx, timeouts, connection resets and replies that do not parse. A request whose retries
run out yields a `Failure` (a tombstone), never an exception. Each request carries its seed
and an `X-Factory-Request-Id` header, so servers that honour seeds sample reproducibly and
server logs can be matched to sample ids.

Reasoning: a separate `reasoning_content` / `reasoning` field (vLLM, DeepSeek, SGLang
reasoning parsers) is folded back as `<think>…</think>` before the answer, so the same parser
handles it and inline `<think>` output alike.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection

from factory.child import spawn_child
from factory.errors import TeacherError, TeacherLoadError
from factory.recipe import TeacherConfig
from factory.teachers.base import Failure, Request, Sample
from factory.teachers.openai_client import STOPPED

log = logging.getLogger(__name__)


class OpenAITeacher:
    def __init__(self, cfg: TeacherConfig) -> None:
        self.model_name = cfg.model
        self.base_url = cfg.base_url
        self.api_key = os.environ.get(cfg.api_key_env) or "not-needed"  # local servers take any key
        self.retries = 0  # retried attempts over the teacher's life, for accounting
        self._client: tuple[Connection, subprocess.Popen] | None = _start_client()
        self._closed = False

    def _take_client(self) -> tuple[Connection, subprocess.Popen]:
        """The client process kept from load time or the last call (or a new one)."""
        client, self._client = self._client or _start_client(), None
        return client

    # ---- the calling process: keep the window full, yield results as they land -----------
    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample | Failure]]:
        conn, client = self._take_client()
        try:
            conn.send((cfg, self.base_url, self.api_key))
        except OSError:  # the kept process died while idle: a fresh one serves this call
            _stop(conn, client)
            conn, client = _start_client()
            conn.send((cfg, self.base_url, self.api_key))
        pending: dict[str, Request] = {}
        it = iter(requests)
        exhausted = False
        window = 2 * cfg.concurrency  # queued in the client; its semaphore bounds the in-flight
        chunk = max(1, cfg.concurrency // 4)  # refill in chunks: fewer, larger messages
        try:
            while True:
                batch = []
                room = window - len(pending)
                while not exhausted and room >= chunk and len(batch) < room:
                    request = next(it, None)
                    if request is None:
                        exhausted = True
                    else:
                        batch.append(request)
                if batch:
                    pending.update((r.id, r) for r in batch)
                    conn.send(("requests", batch))
                if not pending:
                    return
                try:
                    landed = conn.recv()
                except (EOFError, OSError):
                    raise TeacherError(
                        f"the openai client process exited with code {client.wait()} while "
                        f"{len(pending)} requests were in flight (its error is above); "
                        "rerun the same command to resume"
                    ) from None
                for request_id, result, retries in landed:
                    self.retries += retries
                    yield pending.pop(request_id), result
        finally:
            # done or interrupted: whatever is still in flight is simply asked again on resume;
            # the client process is kept for the next call once it confirms the session ended
            if _end_session(conn) and self._client is None and not self._closed:
                self._client = (conn, client)
            else:
                _stop(conn, client)

    def close(self) -> None:
        """Stop the client process kept between calls (and any a suspended call still holds:
        it is stopped, not kept, when that call ends)."""
        self._closed = True
        if self._client is not None:
            _stop(*self._client)
            self._client = None


def _end_session(conn: Connection) -> bool:
    """Stop the session; True once the client says every result of it has been sent."""
    try:
        conn.send(("stop", None))
        while conn.poll(30):
            if conn.recv() == STOPPED:  # results of abandoned requests before it are dropped
                return True
    except (OSError, EOFError):
        pass
    return False


def _stop(conn: Connection, client: subprocess.Popen) -> None:
    conn.close()  # EOF: the child exits
    try:
        client.wait(timeout=30)
    except subprocess.TimeoutExpired:
        client.kill()
        client.wait()


def _start_client() -> tuple[Connection, subprocess.Popen]:
    conn, client = spawn_child("factory.teachers.openai_client")
    try:
        kind, detail = conn.recv()
    except EOFError:
        kind, detail = "error", f"it exited with code {client.wait()} (its error is above)"
    if kind != "ready":
        conn.close()
        raise TeacherLoadError(f"teacher.backend=openai: the client process failed: {detail}")
    log.debug("openai client process ready (openai %s)", detail)
    return conn, client
