"""Any OpenAI-compatible chat endpoint (vLLM or SGLang servers, hosted APIs) as a teacher.

The official `openai` async client runs on an event loop in a helper thread; the calling
thread keeps `teacher.concurrency` requests in flight and yields each result as it lands, so
the generation stage can journal it at once. The client's own retries are off: retries here
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

import asyncio
import logging
import os
import queue
import random
import threading
import time
from collections.abc import Iterable, Iterator

from factory.errors import TeacherLoadError
from factory.recipe import TeacherConfig
from factory.teachers.base import Failure, Request, Sample

log = logging.getLogger(__name__)


class OpenAITeacher:
    def __init__(self, cfg: TeacherConfig) -> None:
        try:
            import openai
        except ImportError:
            raise TeacherLoadError("teacher.backend=openai needs `pip install openai`") from None
        self._openai = openai
        self.model_name = cfg.model
        self.base_url = cfg.base_url
        self.api_key = os.environ.get(cfg.api_key_env) or "not-needed"  # local servers take any key
        self.rng = random.Random(0)
        self.retries = 0  # retried attempts over the teacher's life, for accounting

    # ---- the calling thread: keep the window full, yield as results land ----------------
    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample | Failure]]:
        # Handing work between threads is what costs here (each hand-off can wait a whole GIL
        # switch interval), so both directions move in bulk: new requests go to the loop as one
        # list per refill, and results are drained from a queue as many as are ready at once.
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="openai-teacher", daemon=True)
        thread.start()
        client = asyncio.run_coroutine_threadsafe(self._client(cfg), loop).result()
        gate = asyncio.run_coroutine_threadsafe(_semaphore(cfg.concurrency), loop).result()
        results: queue.SimpleQueue = queue.SimpleQueue()
        tasks: set[asyncio.Task] = set()

        def submit(batch: list[Request]) -> None:  # runs on the loop
            for request in batch:
                task = loop.create_task(self._gated(gate, client, request, cfg, results))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        it = iter(requests)
        outstanding, exhausted = 0, False
        window = 2 * cfg.concurrency  # queued on the loop; the semaphore bounds what is in flight
        try:
            while True:
                batch = []
                while not exhausted and outstanding + len(batch) < window:
                    request = next(it, None)
                    if request is None:
                        exhausted = True
                    else:
                        batch.append(request)
                if batch:
                    loop.call_soon_threadsafe(submit, batch)
                    outstanding += len(batch)
                if outstanding == 0:
                    return
                ready = [results.get()]
                if outstanding > cfg.concurrency // 2:
                    time.sleep(0.005)  # let more land before taking the GIL back from the loop
                while True:
                    try:
                        ready.append(results.get_nowait())
                    except queue.Empty:
                        break
                outstanding -= len(ready)
                yield from ready
        finally:
            # interrupted: whatever is still in flight is simply asked again on resume
            asyncio.run_coroutine_threadsafe(_shutdown(tasks, client), loop).result(timeout=30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    async def _gated(self, gate, client, request: Request, cfg: TeacherConfig, results) -> None:
        async with gate:
            result = await self._one(client, request, cfg)
        results.put((request, result))

    async def _client(self, cfg: TeacherConfig):
        return self._openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self.api_key,
            max_retries=0,
            timeout=cfg.request_timeout_s,
        )

    # ---- the event loop: one request with its retries ----------------------------------
    async def _one(self, client, request: Request, cfg: TeacherConfig) -> Sample | Failure:
        openai = self._openai
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
                    return sample
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
                return Failure("client_error", f"HTTP {exc.status_code}: {exc}", attempt + 1)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:  # malformed body
                error, detail = "bad_response", f"{type(exc).__name__}: {exc}"
            if attempt == cfg.max_retries:
                break
            self.retries += 1
            backoff = self.rng.uniform(0, min(cfg.retry_max_s, cfg.retry_base_s * 2**attempt))
            await asyncio.sleep(retry_after if retry_after is not None else backoff)
        return Failure(error, detail, cfg.max_retries + 1)

    def close(self) -> None:
        """Nothing held between calls: each `generate` owns its loop and client."""


async def _semaphore(size: int) -> asyncio.Semaphore:
    return asyncio.Semaphore(size)  # created on the loop that will use it


async def _shutdown(tasks: set, client) -> None:
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await client.close()


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
    text = f"<think>\n{reasoning.strip()}\n</think>\n{content.lstrip()}" if reasoning else content
    usage = getattr(response, "usage", None)
    return Sample(
        text=text,
        prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
        completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
        finish_reason=choice.finish_reason or "stop",
        reasoning=reasoning,
    )
