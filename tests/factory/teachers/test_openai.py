"""The openai backend against a loopback server that injects faults (a test double for what a
real server cannot be made to do on demand). The real-server path is in test_openai_real.py."""

from __future__ import annotations

import socket
import time

import pytest

from factory.recipe import TeacherConfig
from factory.teachers.base import Failure, Request, Sample
from factory.teachers.openai import OpenAITeacher
from tests.factory.teachers.fault_server import Faults, FaultServer


def _cfg(url: str, **kw) -> TeacherConfig:
    base = {
        "backend": "openai",
        "model": "fake",
        "base_url": url,
        "concurrency": 8,
        "max_retries": 6,
        "retry_base_s": 0.01,
        "retry_max_s": 0.05,
        "request_timeout_s": 10,
    }
    return TeacherConfig(**{**base, **kw})


def _requests(n: int) -> list[Request]:
    return [
        Request(f"id{i}", ({"role": "user", "content": f"Calculate {i} + 2."},), 0, i)
        for i in range(n)
    ]


def _run(server_faults: Faults, n: int = 40, **cfg):
    with FaultServer(server_faults) as server:
        cfg = _cfg(server.url, **cfg)
        results = dict((r.id, out) for r, out in OpenAITeacher(cfg).generate(_requests(n), cfg))
    return server, results


def test_clean_server_every_request_once_within_the_concurrency_bound():
    server, results = _run(Faults(latency=(0.005, 0.02)), n=60, concurrency=8)
    assert len(results) == 60 and all(isinstance(r, Sample) for r in results.values())
    assert set(server.requests.values()) == {1}
    assert 1 < server.max_in_flight <= 8
    s = results["id5"]
    assert "5 + 2 = 7" in s.text and s.finish_reason == "stop" and s.completion_tokens > 0


def test_faults_are_retried_until_they_succeed():
    faults = Faults(
        rate_limit=0.15, server_error=0.15, reset=0.1, bad_json=0.1, latency=(0, 0.01), seed=3
    )
    server, results = _run(faults, n=60, max_retries=12)
    assert all(isinstance(r, Sample) for r in results.values()), [
        r for r in results.values() if isinstance(r, Failure)
    ]
    assert sum(server.requests.values()) > 60  # retries happened
    assert set(server.successes.values()) == {1}  # and each id succeeded exactly once


def test_retry_after_is_honoured():
    t0 = time.monotonic()
    server, results = _run(Faults(rate_limit=1.0, retry_after=0.3), n=1, max_retries=1)
    assert time.monotonic() - t0 >= 0.3
    assert results["id0"] == Failure("rate_limited", results["id0"].detail, 2)
    assert server.requests["id0"] == 2


def test_exhausted_retries_become_tombstones():
    server, results = _run(Faults(always_fail={"id1", "id5"}), n=8, max_retries=2)
    failed = {rid for rid, r in results.items() if isinstance(r, Failure)}
    assert failed == {"id1", "id5"}
    assert results["id1"].error == "server_error" and results["id1"].attempts == 3
    assert server.requests["id1"] == 3 and server.requests["id2"] == 1


def test_truncated_and_reasoning_field():
    _, results = _run(Faults(length=1.0), n=2)
    assert {r.finish_reason for r in results.values()} == {"length"}
    _, results = _run(Faults(reasoning_field=True), n=3)
    s = results["id2"]
    assert s.text.startswith("<think>\n2 + 2 = 4.\n</think>\n") and s.reasoning == "2 + 2 = 4."


def test_dead_server_fails_fast_as_connection_errors():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket closes
    cfg = _cfg(f"http://127.0.0.1:{port}/v1", max_retries=1)
    t0 = time.monotonic()
    results = list(OpenAITeacher(cfg).generate(_requests(3), cfg))
    assert time.monotonic() - t0 < 10
    assert {r.error for _, r in results} == {"connection"}


def test_client_errors_are_not_retried():
    from tests.factory.teachers import fault_server

    class BadRequest(FaultServer):
        def _answer(self, h, body, rid, roll):
            self.requests[rid] += 0
            return fault_server._send(h, 400, {"error": {"message": "bad model"}})

    with BadRequest() as server:
        cfg = _cfg(server.url)
        ((_, result),) = OpenAITeacher(cfg).generate(_requests(1), cfg)
    assert result.error == "client_error" and result.attempts == 1 and server.requests["id0"] == 1


@pytest.mark.parametrize("bad", ["teacher.base_url=null", "teacher.concurrency=0"])
def test_openai_recipe_validation(bad):
    from factory.errors import RecipeError
    from factory.recipe import load_recipe

    with pytest.raises(RecipeError):
        load_recipe(
            "math-cot", ["teacher.backend=openai", "teacher.base_url=http://127.0.0.1:1/v1", bad]
        )


def test_one_client_process_serves_call_after_call_even_after_an_abandoned_one():
    """A judge calls `generate` once per batch: the client process (and its `openai` import)
    is reused, and results of requests abandoned mid-call never leak into the next call."""
    with FaultServer(Faults(latency=(0.01, 0.03))) as server:
        cfg = _cfg(server.url, concurrency=4)
        teacher = OpenAITeacher(cfg)
        try:
            pid = teacher._client[1].pid
            first = teacher.generate(_requests(40), cfg)
            next(first)
            first.close()  # abandoned with requests in flight
            assert teacher._client[1].pid == pid
            again = [Request(f"b{i}", r.messages, 0, i) for i, r in enumerate(_requests(12))]
            results = dict((r.id, out) for r, out in teacher.generate(again, cfg))
            assert sorted(results) == sorted(r.id for r in again)  # nothing from the first call
            assert all(isinstance(s, Sample) for s in results.values())
            assert teacher._client[1].pid == pid
        finally:
            teacher.close()
        assert teacher._client is None


def test_long_prompts_and_answers_at_high_concurrency_do_not_deadlock():
    """Megabytes in flight both ways: the parent blocked sending a batch while the client
    waits for it to read results would hang forever (it did, before the client stopped
    waiting on its writes)."""
    import threading

    with FaultServer(Faults(pad=50_000)) as server:
        cfg = _cfg(server.url, concurrency=128)
        requests = [
            Request(
                f"id{i}", ({"role": "user", "content": f"Calculate {i} + 2. " + "x" * 8000},), 0, i
            )
            for i in range(600)
        ]
        done: list = []
        worker = threading.Thread(
            target=lambda: done.extend(OpenAITeacher(cfg).generate(requests, cfg)), daemon=True
        )
        worker.start()
        worker.join(180)
    assert not worker.is_alive(), "the openai teacher hung"
    assert len(done) == 600 and all(isinstance(s, Sample) for _, s in done)
    assert len(done[0][1].text) > 50_000
