"""The optional llamacpp backend over the bundled GGUF. llama-cpp-python builds from source
(~10 min), so it is not in the default install or CI; this runs wherever it is installed."""

from __future__ import annotations

import pytest

from factory.errors import TeacherLoadError
from factory.recipe import TeacherConfig
from factory.teachers import load_teacher
from factory.teachers.base import Request, Sample

llama_cpp = pytest.importorskip("llama_cpp", reason="optional extra: pip install '.[llamacpp]'")


def test_generates_from_the_bundled_gguf_with_per_request_seeds():
    cfg = TeacherConfig(backend="llamacpp", max_new_tokens=24, temperature=0.7, max_model_len=1024)
    teacher = load_teacher(cfg)
    messages = ({"role": "user", "content": "Calculate 2 + 3."},)
    requests = [
        Request("a", messages, 0, 1),
        Request("b", messages, 1, 2),
        Request("c", messages, 0, 1),
    ]
    results = dict((r.id, s) for r, s in teacher.generate(requests, cfg))
    assert all(
        isinstance(s, Sample) and s.text and s.completion_tokens > 0 for s in results.values()
    )
    assert results["a"].text == results["c"].text  # same seed, same sample, whatever came between
    assert results["a"].prompt_tokens > 0 and results["a"].finish_reason in ("stop", "length")


def test_needs_a_gguf():
    with pytest.raises(TeacherLoadError, match="needs a .gguf file"):
        load_teacher(TeacherConfig(backend="llamacpp", model="./some/folder"))
