"""Train recipes: typed dataclasses for `factory train` (SFT of a student on factory data).

A train recipe is a YAML file with a top-level `train:` mapping (that is how it is told from a
run or a mix recipe). It fills these dataclasses through `factory.typed.build`, so an unknown
key or a bad value fails before any data or model is loaded, naming the key, the value, what
is allowed and a close match for typos.

    train:
      model: smollm2-135m-instruct      # a local folder, a hub id, or the bundled alias
      datasets:                         # published folders or finished run directories
        - {path: datasets/arith, weight: 1}
      chat_template: templates/chatml-think.jinja   # relative to the recipe's folder
      max_length: null                  # null: the smallest multiple of 64 that cuts nothing
      on_overflow: error                # error | drop | truncate: never cut silently
      learning_rate: 1.0e-4
      max_steps: 60

Command-line overrides are dotted keys as for run recipes: `train.max_steps=20`,
`train.lora.enabled=true`, `train.datasets=[{path: a, weight: 3}, {path: b, weight: 1}]`.

Packing and padding-free (TRL 1.16): both keep assistant-only loss, because TRL builds the
labels (-100 outside `{% generation %}`) while preparing the dataset, before packing, and the
packed/flattened rows carry those labels. Packing needs a `max_length`; padding-free without
packing does not enforce `max_length` in TRL, so that combination is refused here;
`packing: true` uses TRL's best-fit-decreasing strategy, which turns padding-free on by itself.
Flattened batches keep sequences apart through `position_ids`: FlashAttention's varlen kernels
on GPU, a block-diagonal mask built by transformers for sdpa/eager elsewhere (correct, not
faster).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from factory import typed
from factory.errors import RecipeError

# settings that change how long training runs or how it is logged, not what a step does:
# left out of the fingerprint, so `train.max_steps=20` after 10 resumes the same folder
DURATION_KEYS = ("epochs", "max_steps", "save_steps", "logging_steps", "save_total_limit")


@dataclass
class DatasetSpec:
    """One input: a folder written by `factory publish` or a finished run directory."""

    path: str = ""
    weight: float = 1.0  # relative share of the training mix (see factory/sft_data.py)

    def __post_init__(self) -> None:
        if not self.path:
            raise RecipeError("train.datasets: every dataset needs a 'path'")
        if not self.weight > 0:
            raise RecipeError(f"train.datasets[{self.path}].weight: bad value {self.weight} (> 0)")


@dataclass
class LoraSettings:
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] | str = "all-linear"  # peft's shorthand, or module names

    def __post_init__(self) -> None:
        if self.r < 1:
            raise RecipeError(f"train.lora.r: bad value {self.r} (>= 1)")
        if not 0 <= self.dropout < 1:
            raise RecipeError(f"train.lora.dropout: bad value {self.dropout} (0 <= dropout < 1)")


@dataclass
class TrainConfig:
    model: str = "smollm2-135m-instruct"
    datasets: list[DatasetSpec] = field(default_factory=list)
    chat_template: str = "templates/chatml-think.jinja"
    pad_token: str | None = None  # set when the tokenizer's pad token is its eos (SmolLM2)
    cache_dir: str | None = None  # where the bundled GGUF alias is converted once
    max_length: int | None = None  # null: chosen from the data (multiple of 64, <= the cap)
    max_length_cap: int = 4096
    on_overflow: Literal["error", "drop", "truncate"] = "error"
    packing: bool = False
    padding_free: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    epochs: float = 1.0
    max_steps: int | None = None  # null: `epochs` decides
    learning_rate: float = 2.0e-5
    lr_scheduler: Literal["cosine", "cosine_with_min_lr", "linear", "constant"] = "cosine"
    min_lr_rate: float = 0.1  # with cosine_with_min_lr: the floor as a share of the peak
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    bf16: Literal["auto"] | bool = "auto"  # auto: on when CUDA is available
    attn_implementation: str | None = None  # e.g. flash_attention_2 on GPU; null: default
    seed: int = 0
    save_steps: int = 500
    save_total_limit: int | None = None
    logging_steps: int = 10
    output_dir: str | None = None  # null: runs/train/<name>-<fingerprint>

    def __post_init__(self) -> None:
        if not self.datasets:
            raise RecipeError(
                "train.datasets: name at least one dataset ({path: DIR, weight: 1}), a folder "
                "written by `factory publish` or a finished run directory"
            )
        for key in ("per_device_batch_size", "gradient_accumulation_steps", "save_steps"):
            if getattr(self, key) < 1:
                raise RecipeError(f"train.{key}: bad value {getattr(self, key)} (>= 1)")
        if self.logging_steps < 1:
            raise RecipeError(f"train.logging_steps: bad value {self.logging_steps} (>= 1)")
        if self.max_steps is not None and self.max_steps < 1:
            raise RecipeError(f"train.max_steps: bad value {self.max_steps} (>= 1, or null)")
        if not self.epochs > 0:
            raise RecipeError(f"train.epochs: bad value {self.epochs} (> 0)")
        if not self.learning_rate > 0:
            raise RecipeError(f"train.learning_rate: bad value {self.learning_rate} (> 0)")
        if not 0 <= self.warmup_ratio < 1:
            raise RecipeError(f"train.warmup_ratio: bad value {self.warmup_ratio} (0 <= r < 1)")
        if self.max_length_cap < 64:
            raise RecipeError(f"train.max_length_cap: bad value {self.max_length_cap} (>= 64)")
        if self.max_length is not None and self.max_length < 1:
            raise RecipeError(f"train.max_length: bad value {self.max_length} (>= 1, or null)")
        if self.padding_free and not self.packing:
            raise RecipeError(
                "train.padding_free=true without train.packing: TRL 1.16 does not enforce "
                "max_length then, so over-long samples would train uncut and unreported; set "
                "train.packing=true (best-fit packing is padding-free) or padding_free=false"
            )


@dataclass
class TrainRecipe:
    name: str
    train: TrainConfig = field(default_factory=TrainConfig)
    description: str = ""
    base_dir: Path | None = field(default=None, init=False, repr=False)  # the YAML's folder

    def to_dict(self) -> dict[str, Any]:
        out = typed.to_dict(self)
        out.pop("base_dir", None)
        return out

    def fingerprint(self) -> str:
        """Changes with what a training step does (model, data specs, template text,
        hyperparameters), not with how long it runs: see DURATION_KEYS."""
        settings = self.to_dict()
        for key in (*DURATION_KEYS, "output_dir", "cache_dir"):
            settings["train"].pop(key, None)
        settings.pop("description", None)
        settings["chat_template_text"] = self.chat_template_path().read_text(encoding="utf-8")
        blob = json.dumps(settings, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def chat_template_path(self) -> Path:
        from factory.recipe import RECIPES_DIR

        path = Path(self.train.chat_template)
        if not path.is_absolute():
            path = (self.base_dir or RECIPES_DIR) / path
        if not path.is_file():
            raise RecipeError(f"train.chat_template: file not found: {path}")
        return path


# --- loading -------------------------------------------------------------------------------


def is_train_recipe(name: str) -> bool:
    """True when recipe `name` (a name in recipes/ or a .yaml path) has a top-level `train:`."""
    from factory.recipe import has_section

    return has_section(name, "train")


def load_train_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> TrainRecipe:
    from factory.recipe import apply_override, find_recipe, read_yaml

    path = find_recipe(name)
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("train"), dict):
        raise RecipeError(f"recipe {path} has no `train:` mapping: it is not a train recipe")
    data = copy.deepcopy(data)
    data.setdefault("name", path.stem)
    for item in overrides:
        apply_override(data, item)
    recipe = typed.build(TrainRecipe, data)
    recipe.base_dir = path.resolve().parent
    recipe.chat_template_path()  # fail now on a missing template, not after loading data
    return recipe
