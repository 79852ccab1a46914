"""The openai backend against a real OpenAI-compatible server: `transformers serve` started on
loopback by the test over the bundled SmolLM2 (no network, no hub)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from factory.teachers.transformers import resolve_model
from tests.helpers import factory


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(model_cache):
    folder = resolve_model("smollm2-135m-instruct", model_cache)
    port = _free_port()
    cli = str(Path(sys.executable).parent / "transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [cli, "serve", folder, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"transformers serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not come up in 180 s")
    yield f"{url}/v1", folder
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_pipeline_against_transformers_serve(server, tmp_path):
    url, folder = server
    out = tmp_path / "run"
    args = [
        "run", "recipe=math-cot", "teacher.backend=openai", f"teacher.base_url={url}",
        f"teacher.model={folder}", "source.limit=4", "teacher.n=2", "teacher.max_new_tokens=48",
        "teacher.concurrency=4", "--out", str(out),
    ]  # fmt: skip
    result = factory(*args)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["teacher"]["requested"] == 8 and manifest["teacher"]["failed"] == 0
    assert manifest["funnel"]["generated"] == 8
    assert manifest["samples"]["prompt_tokens"] > 0 and manifest["samples"]["completion_tokens"] > 0
    stages = {s["name"]: s for s in manifest["stages"]}
    assert stages["parse"]["inputs"] == 8  # every reply reached the parser, kept or dropped
    again = factory(*args)
    assert again.returncode == 0 and "samples: 0 requested" in again.stdout
