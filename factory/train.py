"""`factory train recipe=NAME`: supervised fine-tuning of a student on factory data with TRL.

    train(recipe) reads top to bottom:
      1. data        published folders / run directories → one `messages` dataset (sft_data.py)
      2. tokenizer   the student's, with the recipe's chat template file set on it
      3. pre-flight  factory.lint over every conversation (rendered and tokenized once): hard
                     errors stop here, before any model is loaded, each with its fix
      4. max_length  chosen from lint's token count of every sample (the template applied):
                     the smallest multiple of 64 that cuts nothing, at most `max_length_cap`;
                     samples over it are then an error, dropped or truncated as `on_overflow`
                     says, always counted in the log and the lineage
      5. trainer     TRL `SFTTrainer` with `SFTConfig(assistant_only_loss=True)`: only the
                     assistant turns (think block, answer and the closing <|im_end|>) are
                     trained; LoRA through peft when `lora.enabled`
      6. train       resumes from the output folder's last checkpoint when it holds one of the
                     same recipe and data
      7. lineage     `factory_train.json` (resolved recipe, fingerprints, lint report, loss
                     history) in every checkpoint and in the output folder; the final model
                     and tokenizer (with the template) are saved so `from_pretrained(out)` and
                     `factory run teacher.model=<out>` work. A LoRA run saves the adapter in
                     `<out>/adapter` and the merged model in `<out>`.

Multi-GPU: `accelerate launch --config_file recipes/accelerate/zero3.yaml -m factory.train_main
recipe=distill-7b` (or fsdp.yaml); the Trainer reads the distributed setup from accelerate.
Only the main process writes lineage files. A LoRA run under ZeRO-3/FSDP saves the adapter
only (the shards cannot be merged in place): merge it afterwards on one machine.

Not covered: evaluation during training (`factory eval` reads the lineage afterwards),
multimodal data, resuming with different data or settings (refused: choose another output
folder).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import factory
from factory.errors import FactoryError
from factory.sft_data import SFTData, load_sft_dataset
from factory.storage.atomic import write_json
from factory.train_recipe import TrainRecipe

log = logging.getLogger(__name__)

LINEAGE = "factory_train.json"
LENGTH_STEP = 64  # max_length is chosen as a multiple of this


class TrainError(FactoryError):
    """Training cannot start: the pre-flight check failed, samples are over max_length, or
    the output folder holds a checkpoint of other data or settings."""


def train(recipe: TrainRecipe, resume: bool = True) -> dict[str, Any]:
    """Fine-tune `recipe.train.model` on the recipe's datasets; return a summary (steps,
    first/last loss, seconds, samples/s, tokens/s, output folder)."""
    cfg = recipe.train

    # 1. data
    dataset, data = load_sft_dataset(cfg.datasets, cfg.seed)
    log.info("data: %d conversations from %d input(s)", data.rows, len(data.inputs))

    # 2. tokenizer
    model_path = _resolve_model(cfg.model, cfg.cache_dir)
    tokenizer = _tokenizer(model_path, recipe)

    # 3. pre-flight, before any model is loaded (it renders and tokenizes every conversation
    # once, its long-sample warning against the longest max_length training may use)
    conversations = list(dataset["messages"])
    report = _preflight(conversations, tokenizer, data, cfg.max_length or cfg.max_length_cap)

    # 4. max_length from those token counts: the smallest multiple of 64 that cuts nothing,
    # capped; then overflow, which is never silent
    lengths = report.token_counts
    max_length, overflow = choose_max_length(lengths, cfg.max_length, cfg.max_length_cap)
    dataset, data = _apply_overflow(dataset, data, lengths, max_length, overflow, cfg)

    # 5. trainer
    out = Path(cfg.output_dir or f"runs/train/{recipe.name}-{_run_fingerprint(recipe, data)}")
    checkpoint = _checkpoint_to_resume(out, recipe, data, resume)
    lineage = {
        "recipe": recipe.to_dict(),
        "recipe_fingerprint": recipe.fingerprint(),
        "datasets": [
            {
                "path": i.path,
                "layout": i.layout,
                "fingerprint": i.fingerprint,
                "weight": i.weight,
                "rows": i.rows,
                "taken": i.taken,
                "repeated": i.repeated,
                "skipped": i.skipped,
                "recipe_fingerprints": i.recipe_fingerprints,
                "run_ids": i.run_ids,
            }
            for i in data.inputs
        ],
        "dataset_fingerprint": data.fingerprint,
        "rows": data.rows,
        "base_model": cfg.model,
        "base_model_path": model_path,
        "max_length": max_length,
        "overflow": overflow,
        "lint": report.to_dict(),
        "factory_version": factory.__version__,
    }
    trainer = _trainer(cfg, model_path, tokenizer, dataset, out, max_length)
    recorder = _lineage_callback(lineage)
    trainer.add_callback(recorder)

    # 6. train
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    seconds = time.perf_counter() - started

    # 7. final model, tokenizer and lineage
    _save_final(trainer, tokenizer, cfg, out)
    state = trainer.state
    final = {**lineage, "global_step": state.global_step, "train_loss": _losses(state)}
    if trainer.is_world_process_zero():
        write_json(out / LINEAGE, final)
    return _summary(state, recorder, seconds, out, max_length, overflow, trainer.args)


# --- 2. model and tokenizer -----------------------------------------------------------------


def _resolve_model(model: str, cache_dir: str | None) -> str:
    from factory.teachers.transformers import resolve_model

    return resolve_model(model, cache_dir)


def _tokenizer(model_path: str, recipe: TrainRecipe):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.chat_template = recipe.chat_template_path().read_text(encoding="utf-8")
    pad = recipe.train.pad_token
    if pad is not None:
        if pad not in tokenizer.get_vocab():
            raise TrainError(
                f"train.pad_token={pad!r} is not in the tokenizer's vocabulary of {model_path}"
            )
        tokenizer.pad_token = pad
    return tokenizer


# --- 3. lengths and max_length ------------------------------------------------------------


def choose_max_length(
    lengths: list[int], fixed: int | None, cap: int
) -> tuple[int, dict[str, Any]]:
    """(max_length, overflow report): `fixed` when given, else the smallest multiple of 64
    that holds the longest sample, at most `cap`."""
    longest = max(lengths) if lengths else 0
    if fixed is not None:
        chosen, how = fixed, "recipe"
    else:
        chosen = min(cap, max(LENGTH_STEP, math.ceil(longest / LENGTH_STEP) * LENGTH_STEP))
        how = "data" if chosen >= longest else "cap"
    over = sum(n > chosen for n in lengths)
    report = {"chosen_by": how, "longest": longest, "samples": len(lengths), "over": over}
    log.info(
        "max_length %d (%s): %d of %d sample(s) longer (longest %d tokens)",
        chosen,
        how,
        over,
        len(lengths),
        longest,
    )
    return chosen, report


# --- 4. pre-flight and overflow -----------------------------------------------------------

# the recipe key that applies each lint fix in `factory train`
FIX_KEYS = {
    "eos_is_pad": "train.pad_token",
    "no_generation_markers": "train.chat_template",
    "reasoning_dropped": "train.chat_template",
    "eos_missing": "train.chat_template",
}


def _preflight(conversations, tokenizer, data: SFTData, max_length: int):
    """factory.lint over every conversation with the template set on the tokenizer; hard
    errors stop training here, each with its fix."""
    from factory.lint import lint_conversations

    report = lint_conversations(
        conversations, tokenizer, chat_template=None, max_length=max_length, ids=data.ids
    )
    for finding in report.findings:
        if finding.severity != "error":
            log.warning("lint %s (%d sample(s)): %s", finding.check, finding.count, finding.message)
    if not report.ok:
        lines = [
            f"  - {f.check} ({f.count} sample(s)): {f.message}"
            + (f" [recipe key: {FIX_KEYS[f.check]}]" if f.check in FIX_KEYS else "")
            for f in report.errors()
        ]
        raise TrainError(
            "pre-flight check failed, nothing was trained (no model was loaded):\n"
            + "\n".join(lines)
        )
    return report


def _apply_overflow(dataset, data: SFTData, lengths, max_length, overflow, cfg):
    over = overflow["over"]
    overflow["action"] = cfg.on_overflow if over else "none"
    if not over:
        return dataset, data
    what = f"{over} of {len(lengths)} sample(s) are longer than max_length {max_length} tokens"
    if cfg.on_overflow == "error":
        raise TrainError(
            f"{what} (longest {overflow['longest']}); nothing is cut silently: raise "
            f"train.max_length (or train.max_length_cap), or set train.on_overflow=drop "
            "(leave them out) or train.on_overflow=truncate (cut their ends)"
        )
    if cfg.on_overflow == "truncate":
        log.warning("%s: they are truncated to %d tokens", what, max_length)
        return dataset, data
    keep = [i for i, n in enumerate(lengths) if n <= max_length]
    log.warning("%s: they are dropped (%d kept)", what, len(keep))
    data.ids = [data.ids[i] for i in keep]
    data.rows = len(keep)
    return dataset.select(keep), data


# --- 5. trainer ----------------------------------------------------------------------------


def _use_bf16(setting) -> bool:
    if setting != "auto":
        return bool(setting)
    import torch

    return torch.cuda.is_available()


def _trainer(cfg, model_path: str, tokenizer, dataset, out: Path, max_length: int):
    import torch
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    bf16 = _use_bf16(cfg.bf16)
    scheduler_kwargs = (
        {"min_lr_rate": cfg.min_lr_rate} if cfg.lr_scheduler == "cosine_with_min_lr" else None
    )
    # the config first: under ZeRO-3 it must exist before the model is created (zero.Init)
    args = SFTConfig(
        output_dir=str(out),
        assistant_only_loss=True,
        max_length=max_length,
        packing=cfg.packing,
        packing_strategy="bfd",
        padding_free=cfg.padding_free,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        lr_scheduler_kwargs=scheduler_kwargs,
        warmup_steps=cfg.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.per_device_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        activation_checkpointing=cfg.gradient_checkpointing,  # transformers 5's name
        bf16=bf16,
        seed=cfg.seed,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        include_num_input_tokens_seen="non_padding",
        report_to=[],
    )
    kwargs = {"dtype": torch.bfloat16 if bf16 else torch.float32}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=_lora_config(cfg.lora) if cfg.lora.enabled else None,
    )


def _lora_config(lora):
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )


# --- 6. resume -----------------------------------------------------------------------------


def _run_fingerprint(recipe: TrainRecipe, data: SFTData) -> str:
    import hashlib

    blob = f"{recipe.fingerprint()}:{data.fingerprint}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _checkpoint_to_resume(out: Path, recipe: TrainRecipe, data: SFTData, resume: bool):
    """The last checkpoint in `out` when it was written for this recipe and data, else None;
    a checkpoint of other data or settings (or any, with resume=False) is refused."""
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(out)) if out.is_dir() else None
    if last is None:
        return None
    if not resume:
        raise TrainError(
            f"{out} already holds {Path(last).name}; resume it (the default), or choose another "
            "train.output_dir (nothing is deleted for you)"
        )
    lineage = Path(last) / LINEAGE
    saved = json.loads(lineage.read_text(encoding="utf-8")) if lineage.is_file() else {}
    mine = {"recipe_fingerprint": recipe.fingerprint(), "dataset_fingerprint": data.fingerprint}
    differ = [k for k, v in mine.items() if saved.get(k) != v]
    if differ:
        raise TrainError(
            f"{last} was trained with other {' and '.join(d.split('_')[0] for d in differ)} "
            f"({', '.join(f'{k} {saved.get(k)} vs {mine[k]}' for k in differ)}); "
            "choose another train.output_dir to start a new run"
        )
    return Path(last)


# --- 7. lineage and the final save -------------------------------------------------------


def _lineage_callback(lineage: dict[str, Any]):
    from transformers import TrainerCallback

    class LineageCallback(TrainerCallback):
        """Writes factory_train.json into every checkpoint folder as it is saved."""

        def __init__(self) -> None:
            self.tokens_at_start = 0
            self.step_at_start = 0

        def on_train_begin(self, args, state, control, **kwargs):
            self.tokens_at_start = state.num_input_tokens_seen or 0
            self.step_at_start = state.global_step

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                record = {**lineage, "global_step": state.global_step}
                write_json(folder / LINEAGE, {**record, "train_loss": _losses(state)})

    return LineageCallback()


def _losses(state) -> list[dict[str, float]]:
    return [{"step": e["step"], "loss": e["loss"]} for e in state.log_history if "loss" in e]


def _save_final(trainer, tokenizer, cfg, out: Path) -> None:
    if not cfg.lora.enabled:
        trainer.save_model(str(out))  # gathers ZeRO-3 / FSDP shards; saves the tokenizer too
        return
    trainer.save_model(str(out / "adapter"))
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        log.warning("LoRA under ZeRO-3/FSDP: adapter saved in %s/adapter, merge it apart", out)
        return
    if trainer.is_world_process_zero():
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))


def _summary(state, recorder, seconds, out, max_length, overflow, args) -> dict[str, Any]:
    losses = [e["loss"] for e in _losses(state)]
    steps = state.global_step - recorder.step_at_start
    world = max(1, getattr(args, "world_size", 1))
    samples = steps * args.per_device_train_batch_size * args.gradient_accumulation_steps * world
    tokens = (state.num_input_tokens_seen or 0) - recorder.tokens_at_start
    return {
        "output_dir": str(out),
        "global_step": state.global_step,
        "steps_this_run": steps,
        "resumed_from_step": recorder.step_at_start,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "seconds": round(seconds, 2),
        "samples_per_second": round(samples / seconds, 3) if seconds else None,
        "tokens_per_second": round(tokens / seconds, 1) if seconds else None,
        "max_length": max_length,
        "overflow": overflow,
    }
