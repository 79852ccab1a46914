"""A small OpenAI-compatible chat server on loopback that injects faults on purpose.

A test double for what a real server cannot be made to do on demand: 429 with Retry-After,
500s, connection resets, malformed JSON, `finish_reason=length`, random latency, and ids
that always fail. Answers are computed from "Calculate A op B." prompts so that verification
downstream has something real to check. It counts requests per `X-Factory-Request-Id` and
the most requests it ever had in flight at once. Everything is bounded and seeded; it only
listens on 127.0.0.1 and stops when the test stops it.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_CALC = re.compile(r"Calculate (-?\d+) ([-+*]) (-?\d+)\.")


@dataclass
class Faults:
    rate_limit: float = 0.0  # share of requests answered 429 with Retry-After
    retry_after: float = 0.05
    server_error: float = 0.0  # 500
    reset: float = 0.0  # close the connection with RST, no reply
    bad_json: float = 0.0  # 200 with a body that is not JSON
    length: float = 0.0  # a reply cut off with finish_reason=length
    latency: tuple[float, float] = (0.0, 0.0)  # seconds, uniform
    always_fail: set[str] = field(default_factory=set)  # request ids answered 500 every time
    reasoning_field: bool = False  # put the reasoning in `reasoning_content`
    wrong_every: int = 3  # every k-th problem (by its numbers) gets a wrong answer
    seed: int = 0
    judge: bool = False  # answer judge prompts (recipes/prompts/judge.txt) with CORRECT/INCORRECT
    judge_lenient: str = ""  # ...and call answers ending in this correct even when wrong
    judge_harsh: str = ""  # ...and answers ending in this incorrect even when right
    code: dict[str, str] = field(default_factory=dict)  # entry point → program to answer with
    pad: int = 0  # characters of filler added to each reasoning (long answers)


_JUDGED = re.compile(r"Problem: Calculate (-?\d+) ([-+*]) (-?\d+)\.[\s\S]*final answer: (\S*)")


def judge_reply(prompt: str, faults: Faults) -> str:
    """A judge that grades "Calculate" problems by arithmetic, except that it calls answers
    ending in `faults.judge_lenient` correct and those ending in `faults.judge_harsh` incorrect
    (so that verifiers can disagree both ways)."""
    match = _JUDGED.search(prompt)
    if not match:
        return "I cannot tell."
    a, op, b, answer = int(match[1]), match[2], int(match[3]), match[4]
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    lenient = faults.judge_lenient and answer.endswith(faults.judge_lenient)
    harsh = faults.judge_harsh and answer.endswith(faults.judge_harsh)
    return "CORRECT" if (answer == str(value) and not harsh) or lenient else "INCORRECT"


def answer_for(prompt: str, faults: Faults) -> tuple[str, str]:
    match = _CALC.search(prompt)
    if not match:
        return "I am not sure.", "0"
    a, op, b = int(match.group(1)), match.group(2), int(match.group(3))
    value = {"+": a + b, "-": a - b, "*": a * b}[op]
    if faults.wrong_every and (abs(a) + abs(b)) % faults.wrong_every == 0:
        value += 1
    return f"{a} {op} {b} = {value}.", str(value)


class FaultServer:
    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.requests: Counter[str] = Counter()
        self.successes: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                rid = self.headers.get("x-factory-request-id", "")
                with server._lock:
                    server.requests[rid] += 1
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    roll = server._rng.random()
                    delay = server._rng.uniform(*server.faults.latency)
                try:
                    time.sleep(delay)
                    server._answer(self, json.loads(body), rid, roll)
                except (ValueError, OSError):  # a client killed mid-request: nothing to answer
                    self.close_connection = True
                finally:
                    with server._lock:
                        server.in_flight -= 1

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 refuses bursts of new connections

            def handle_error(self, request, client_address) -> None:
                pass  # killed clients reset connections on purpose in these tests

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, h: BaseHTTPRequestHandler, body: dict, rid: str, roll: float) -> None:
        f = self.faults
        fault = _pick(
            roll,
            [
                ("rate_limit", f.rate_limit),
                ("server_error", f.server_error),
                ("reset", f.reset),
                ("bad_json", f.bad_json),
                ("length", f.length),
            ],
        )
        if rid in f.always_fail or fault == "server_error":
            return _send(h, 500, {"error": {"message": "injected server error"}})
        if fault == "rate_limit":
            headers = {"Retry-After": str(f.retry_after)}
            return _send(h, 429, {"error": {"message": "slow down"}}, headers)
        if fault == "reset":  # RST, no reply at all
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return None
        if fault == "bad_json":
            return _send_raw(h, 200, b'{"id": "x", "choices": [{"message": ')
        prompt = body["messages"][-1]["content"]
        reasoning, value = answer_for(prompt, f)
        finish = "stop"
        content = f"The answer is \\boxed{{{value}}}."
        if f.pad:
            reasoning = f"{reasoning} {'y' * f.pad}"
        if f.judge:
            reasoning, content = "Comparing the answers.", judge_reply(prompt, f)
        for entry_point, program in f.code.items():
            if f"def {entry_point}(" in prompt:
                reasoning = f"I will write {entry_point}."
                content = f"```python\n{program}\n```"
        if fault == "length":
            reasoning, content, finish = reasoning[: len(reasoning) // 2], "", "length"
        message = {"role": "assistant", "content": f"<think>\n{reasoning}\n</think>\n{content}"}
        if f.reasoning_field:
            message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
        with self._lock:
            self.successes[rid] += 1
        return _send(
            h,
            200,
            {
                "id": f"chatcmpl-{rid[:8]}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "fake"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {
                    "prompt_tokens": len(prompt.split()),
                    "completion_tokens": len(reasoning.split()) + 4,
                    "total_tokens": len(prompt.split()) + len(reasoning.split()) + 4,
                },
            },
        )


def _pick(roll: float, shares: list[tuple[str, float]]) -> str | None:
    """The fault whose slice of [0, 1) the roll falls in, or None for a clean reply."""
    edge = 0.0
    for name, share in shares:
        edge += share
        if roll < edge:
            return name
    return None


def _send(h: BaseHTTPRequestHandler, status: int, obj: dict, headers: dict | None = None) -> None:
    _send_raw(h, status, json.dumps(obj).encode(), headers)


def _send_raw(
    h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict | None = None
) -> None:
    h.send_response(status)
    h.send_header("content-type", "application/json")
    h.send_header("content-length", str(len(data)))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)


if __name__ == "__main__":  # standalone, for benchmarks: prints its URL, serves until killed
    import sys

    latency = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    with FaultServer(Faults(latency=(latency, latency), wrong_every=0)) as srv:
        print(srv.url, flush=True)
        threading.Event().wait()
