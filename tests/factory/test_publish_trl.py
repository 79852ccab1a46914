"""E3 of RELIABILITY.md: a published folder passes TRL's own dataset preparation with
assistant-only loss, and what TRL trains on is the assistant turn — think block and answer.

TRL's `SFTTrainer` is built for real (`SFTConfig(assistant_only_loss=True)`, the shipped
template `recipes/templates/chatml-think.jinja` through `chat_template_path`), with SmolLM2's
tokenizer from the embedded model and a one-layer model of the same vocabulary (preparing the
dataset needs a model object, not a trained one). Offline; ~10 s once the SmolLM2 folder is
converted (the session's shared model cache, converted once per session: ~25 s on an idle
2-core machine).

The published rows have no `completion` column (it is `raw_completion`): TRL's
`is_conversational` pops one key of {"prompt", "completion", "messages", ...} from a set, so a
string `completion` beside `messages` would make this test pass or fail with the hash seed.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.pipeline import run_recipe
from factory.publish import check_published, publish
from factory.recipe import load_recipe
from factory.storage.rundir import current_version

TEMPLATE = Path(__file__).resolve().parents[2] / "recipes" / "templates" / "chatml-think.jinja"
KNOWLEDGE = "Paris is the capital of France."
JOURNEY = (
    "<think>\nFirst try: 2 + 3 = 6. Checking: 6 - 3 = 3, not 2, so that was wrong.\n"
    "Again: 2 + 3 = 5, and 5 - 3 = 2.\n</think>\n\nThe answer is \\boxed{5}."
)


@pytest.fixture
def tokenizer(smollm2_folder):
    """A fresh tokenizer per test: `chat_template_path` sets the template on the instance."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_folder)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A folder of 8 reasoning rows (a reverify run) + 2 knowledge rows without a think block
    + 1 journey row, the last two stored as a teacher run stores them (prompt + completion)."""
    base = tmp_path_factory.mktemp("trl")
    run = base / "run"
    run_recipe(load_recipe("reverify", ["dedup.workers=0"]), run)

    def kinds(table):
        table = table.slice(0, 3)
        columns = {
            "kind": pa.array(["knowledge", "knowledge", "journey"]),
            "completion": pa.array([KNOWLEDGE, "Water boils at 100 °C at sea level.", JOURNEY]),
            "answer": pa.array(["Paris", "100 °C", "5"]),
            "messages": pa.array(
                [m[:2] for m in table.column("messages").to_pylist()],
                table.schema.field("messages").type,
            ),
        }
        for name, values in columns.items():
            i = table.schema.get_field_index(name)
            table = table.set_column(i, table.schema.field(i), values)
        return table

    other = base / "kinds"  # a copy of the run with the table rewritten
    shutil.copytree(run, other, symlinks=True)
    (shard,) = (current_version(other) / "data").glob("*.parquet")
    pq.write_table(kinds(pq.read_table(shard)), shard)
    folder = base / "ds"
    assert publish([run, other], folder).rows == 11 and check_published(folder) == 11
    return folder


def _trainer(tokenizer, dataset, tmp_path, **config):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl import SFTConfig, SFTTrainer

    torch.manual_seed(0)
    model = LlamaForCausalLM(  # untrained: only its vocabulary has to match the tokenizer
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
        )
    )
    args = SFTConfig(
        output_dir=str(tmp_path / "out"),
        assistant_only_loss=True,
        max_length=4096,
        report_to=[],
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=4,
        **config,
    )
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)


def test_trl_prepares_the_published_folder_with_assistant_only_loss(published, tokenizer, tmp_path):
    import datasets
    import torch

    ds = datasets.load_dataset(str(published), split="train", cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 11 and sorted(set(ds["kind"])) == ["journey", "knowledge", "reasoning"]
    assert {"prompt", "completion", "chosen", "rejected"}.isdisjoint(ds.column_names)
    trainer = _trainer(tokenizer, ds, tmp_path, chat_template_path=str(TEMPLATE))
    prepared = trainer.train_dataset
    assert prepared.num_rows == 11

    for row in prepared:
        labels = [t for t in row["labels"] if t != -100]
        assert len(labels) > 0  # masked (trained) tokens > 0 for every sample
        trained = tokenizer.decode(labels)
        assistant = row["messages"][-1]["content"]
        # exactly the assistant turn plus the stop token: not the system or user turns
        assert trained.strip() == assistant.strip() + "<|im_end|>"
        assert trained.count("<think>") == 1 and "</think>" in trained
        assert row["answer"] in trained.split("</think>", 1)[1]
        for turn in row["messages"][:-1]:
            assert turn["content"] not in trained
        assert len(labels) < len(row["input_ids"])  # the prompt is there, masked out
    knowledge = [r for r in prepared if r["kind"] == "knowledge"]
    assert tokenizer.decode([t for t in knowledge[0]["labels"] if t != -100]).startswith(
        "<think>\n\n</think>\n\n" + KNOWLEDGE
    )

    # the collated batch TRL trains on carries the same masks, and the loss is a number
    batch = next(iter(trainer.get_train_dataloader()))
    assert int((batch["labels"] != -100).sum()) > 0
    with torch.no_grad():
        loss = trainer.model(**{k: v for k, v in batch.items() if k != "completion_mask"}).loss
    assert math.isfinite(float(loss))


def test_trl_refuses_smollm2s_own_template_for_assistant_only_loss(published, tokenizer, tmp_path):
    """SmolLM2's template has no `{% generation %}` markers and TRL has no patched version of
    it: hence the shipped template."""
    import datasets
    from trl.chat_template_utils import has_generation_markers

    ds = datasets.load_dataset(str(published), split="train", cache_dir=str(tmp_path / "cache"))
    assert not has_generation_markers(tokenizer.chat_template)
    with pytest.raises(ValueError, match="not training-compatible"):
        _trainer(tokenizer, ds, tmp_path)


def test_the_shipped_template_trains_the_stop_token_and_preserves_prefixes(tokenizer):
    from trl.chat_template_utils import (
        is_chat_template_prefix_preserving,
        is_chat_template_stop_token_trained,
    )

    tokenizer.chat_template = TEMPLATE.read_text(encoding="utf-8")
    assert is_chat_template_stop_token_trained(tokenizer)
    assert is_chat_template_prefix_preserving(tokenizer)
    messages = [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": "x"}]
    prompt = tokenizer.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    assert full == prompt + "x<|im_end|>\n"  # what inference sees is the training prefix
