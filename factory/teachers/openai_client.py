"""The openai teacher's client process: an event loop running the official async client.

Started by factory/teachers/openai.py as `python -m factory.teachers.openai_client FD`, where
FD is its end of a socket pair. It imports the client and says ("ready", version) — that is
the teacher's load time. Then, once per `generate` call (a session), it takes (teacher config,
base url, api key); ("requests", [Request, ...]) batches arrive until ("stop", None), answered
by "stopped" once nothing of that session is left to send, so the process serves the next
session without importing anything again (an LLM judge calls `generate` once per batch); EOF
ends it. Lists of
(request id, Sample | Failure, retries) leave as results land, gathered for 2 ms per message. The
socket is read and written by the event loop itself (asyncio streams): no helper threads, whose
GIL hand-offs cost more than the requests (a threaded version ran ~1.6x the CPU of a bare
loop), and no blocking write that could deadlock against the parent.

The client's own retries are off: retries here are counted, jittered (full jitter on an
exponential backoff), honour `Retry-After`, and cover 429, 5xx, timeouts, connection resets and
replies that do not parse. Reasoning: a separate `reasoning_content` / `reasoning` field (vLLM,
DeepSeek, SGLang reasoning parsers) is folded back as `<think>…</think>` before the answer.
"""

from __future__ import annotations

import asyncio
import pickle
import random
import signal
import socket
import struct
import sys

from factory.recipe import TeacherConfig
from factory.teachers.base import Failure, Request, Sample

FLUSH_S = 0.002  # results wait this long to share a message: far below any request's latency
STOPPED = "stopped"  # after a stop: every result of that session has been sent


def main(fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    asyncio.run(_serve(socket.socket(fileno=fd)))


async def _serve(sock: socket.socket) -> None:
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        import openai
    except ImportError as exc:
        writer.write(_frame(("error", f"cannot import openai ({exc}); `pip install openai`")))
        await writer.drain()
        return
    writer.write(_frame(("ready", openai.__version__)))  # loaded: the parent's clock may start
    await writer.drain()
    while True:  # one session per `generate` call, until the parent closes the socket
        try:
            cfg, base_url, api_key = await _receive(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        if not await _session(openai, reader, writer, cfg, base_url, api_key):
            break
        writer.write(_frame(STOPPED))  # nothing of that session follows: the parent may reuse us
        await writer.drain()
    writer.close()


async def _session(openai, reader, writer, cfg: TeacherConfig, base_url: str, api_key: str):
    """Serve request batches until ("stop", None) (returns True) or EOF (returns False)."""
    loop = asyncio.get_running_loop()
    client = openai.AsyncOpenAI(
        base_url=base_url, api_key=api_key, max_retries=0, timeout=cfg.request_timeout_s
    )
    gate = asyncio.Semaphore(cfg.concurrency)
    retrying = _Retrying(openai, cfg)
    tasks: set[asyncio.Task] = set()
    landed: list[tuple[str, Sample | Failure, int]] = []

    def flush() -> None:  # every result that landed in the last FLUSH_S, as one message
        if landed:
            writer.write(_frame(landed.copy()))
            landed.clear()

    async def one(request: Request) -> None:
        async with gate:
            try:
                result, retries = await retrying.one(client, request)
            except Exception as exc:  # a bug here must not leave the parent waiting forever
                result, retries = Failure("internal", f"{type(exc).__name__}: {exc}", 1), 0
        if not landed:
            loop.call_later(FLUSH_S, flush)
        landed.append((request.id, result, retries))

    stopped = False
    try:
        while True:
            try:
                kind, batch = await _receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):  # the parent is gone
                break
            if kind == "stop":
                stopped = True
                break
            for request in batch:
                task = loop.create_task(one(request))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            # no `await writer.drain()` here: waiting for the parent to read results while it
            # is blocked sending the next batch would deadlock both; the parent's window
            # (2 x concurrency requests) already bounds what can pile up unsent
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    flush()  # what landed before the stop; a flush still scheduled then finds nothing
    return stopped


# The framing of multiprocessing.connection.Connection (a 4-byte big-endian length, then the
# pickle), so the parent can use a plain blocking Connection on its end.
async def _receive(reader: asyncio.StreamReader):
    (size,) = struct.unpack("!i", await reader.readexactly(4))
    if size == -1:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return pickle.loads(await reader.readexactly(size))


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(data) > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", len(data)) + data
    return struct.pack("!i", len(data)) + data


class _Retrying:
    """Retries with full jitter on an exponential backoff, or the server's `Retry-After`."""

    def __init__(self, openai, cfg: TeacherConfig) -> None:
        self.openai, self.cfg = openai, cfg
        self.rng = random.Random(0)

    async def one(self, client, request: Request) -> tuple[Sample | Failure, int]:
        """One request with its retries; returns the result and how many retries it took."""
        openai, cfg = self.openai, self.cfg
        error, detail = "unknown", ""
        for attempt in range(cfg.max_retries + 1):
            retry_after = None
            try:
                response = await client.chat.completions.create(
                    model=cfg.model,
                    messages=list(request.messages),
                    temperature=cfg.temperature,
                    top_p=cfg.top_p,
                    max_tokens=cfg.max_new_tokens,
                    seed=request.seed,
                    n=1,
                    extra_headers={"X-Factory-Request-Id": request.id},
                )
                sample = _sample(response)
                if isinstance(sample, Sample):
                    return sample, attempt
                error, detail = "bad_response", sample
            except openai.RateLimitError as exc:
                error, detail, retry_after = "rate_limited", str(exc), _retry_after(exc)
            except openai.InternalServerError as exc:
                error, detail, retry_after = "server_error", str(exc), _retry_after(exc)
            except openai.APITimeoutError as exc:
                error, detail = "timeout", str(exc)
            except openai.APIConnectionError as exc:
                error, detail = "connection", str(exc)
            except openai.APIResponseValidationError as exc:
                error, detail = "bad_response", str(exc)
            except openai.APIStatusError as exc:  # 4xx other than 429: asking again will not help
                return Failure(
                    "client_error", f"HTTP {exc.status_code}: {exc}", attempt + 1
                ), attempt
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # malformed body
                error, detail = "bad_response", f"{type(exc).__name__}: {exc}"
            if attempt == cfg.max_retries:
                break
            backoff = self.rng.uniform(0, min(cfg.retry_max_s, cfg.retry_base_s * 2**attempt))
            await asyncio.sleep(retry_after if retry_after is not None else backoff)
        return Failure(error, detail, cfg.max_retries + 1), cfg.max_retries


def _retry_after(exc) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _sample(response) -> Sample | str:
    """A Sample from a chat completion, or a description of what is wrong with it."""
    choices = getattr(response, "choices", None)
    if not choices:
        return "no choices in the reply"
    choice = choices[0]
    message = choice.message
    content = message.content if message is not None else None
    if content is None:
        return "no message content in the reply"
    extra = getattr(message, "model_extra", None) or {}
    reasoning = (
        getattr(message, "reasoning_content", None)
        or extra.get("reasoning_content")
        or extra.get("reasoning")
    )
    if reasoning:
        reasoning = _valid_utf8(reasoning)
    text = f"<think>\n{reasoning.strip()}\n</think>\n{content.lstrip()}" if reasoning else content
    text = _valid_utf8(text)
    usage = getattr(response, "usage", None)
    return Sample(
        text=text,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        finish_reason=choice.finish_reason or "stop",
        reasoning=reasoning,
    )


def _valid_utf8(text: str) -> str:
    """A JSON reply may carry lone surrogates (`"\\udcff"`), which no parquet file can hold:
    each becomes U+FFFD, as a UTF-8 decoder would have done with the raw bytes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


if __name__ == "__main__":
    main(int(sys.argv[1]))
