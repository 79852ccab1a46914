"""llama.cpp (llama-cpp-python) as a CPU teacher, straight from a GGUF file.

About 5× the single-sequence speed of the transformers backend here, but llama-cpp-python
builds from source (~10 minutes on this machine), so it is an optional extra
(`pip install '.[llamacpp]'`) and never part of the default install. One sequence at a time:
each request gets its own seed, so samples do not depend on batching or resume points.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from factory.errors import TeacherLoadError
from factory.recipe import TeacherConfig
from factory.teachers.base import Request, Sample
from factory.teachers.gguf import BUNDLED, bundled_gguf


class LlamaCppTeacher:
    def __init__(self, cfg: TeacherConfig) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise TeacherLoadError(
                "teacher.backend=llamacpp needs llama-cpp-python: pip install '.[llamacpp]' "
                "(builds from source, ~10 min)"
            ) from None
        if cfg.model in BUNDLED:
            path = bundled_gguf(cfg.model)
        elif cfg.model.endswith(".gguf") and Path(cfg.model).is_file():
            path = Path(cfg.model)
        else:
            raise TeacherLoadError(
                f"teacher.model={cfg.model}: the llamacpp backend needs a .gguf file or one of "
                f"{', '.join(BUNDLED)}"
            )
        self.model_name = cfg.model
        self.llm = Llama(
            model_path=str(path),
            n_ctx=cfg.max_model_len or 4096,
            n_threads=cfg.threads or os.cpu_count() or 1,
            seed=cfg.seed,
            verbose=False,
        )

    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample]]:
        for request in requests:
            reply = self.llm.create_chat_completion(
                messages=[dict(m) for m in request.messages],
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                max_tokens=cfg.max_new_tokens,
                seed=request.seed,
            )
            choice, usage = reply["choices"][0], reply.get("usage") or {}
            yield (
                request,
                Sample(
                    text=choice["message"].get("content") or "",
                    prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    completion_tokens=int(usage.get("completion_tokens", 0)),
                    finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
                ),
            )

    def close(self) -> None:
        self.llm = None
