"""`factory train`: a few SFT steps of a tiny model on CPU lower the loss; checkpoints carry the
lineage and resume; the final folder reloads and generates; the pre-flight lint and the
max_length overflow stop training before any model is loaded; several inputs mix by weight;
LoRA trains and saves; the train recipe is typed.

The student is a randomly initialised two-layer Llama (hidden 64) with SmolLM2's tokenizer
(from the session's converted SmolLM2 folder, `model_cache`), saved to a tmp folder as the
"base model": offline, and a few seconds per training run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import RecipeError
from factory.sft_data import load_sft_dataset
from factory.train import LINEAGE, TrainError, choose_max_length, train
from factory.train_recipe import DatasetSpec, is_train_recipe, load_train_recipe

TEMPLATE = Path(__file__).resolve().parents[2] / "recipes" / "templates" / "chatml-think.jinja"
SYSTEM = "Think step by step, then answer."


def _problem(i: int) -> tuple[str, str]:
    a, b = 2 + i % 7, 3 + (i * 5) % 11
    return (
        f"What is {a} + {b}?",
        f"<think>\n{a} + {b} = {a + b}\n</think>\n\nThe answer is \\boxed{{{a + b}}}.",
    )


def _conversation(i: int) -> list[dict[str, str]]:
    question, answer = _problem(i)
    return [  # no system turn: every token costs a 49k-wide softmax on a shared CPU
        {"role": "user", "content": question},
        {"role": "assistant", "content": answer},
    ]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """A folder in the layout `factory publish` writes: 24 valid arithmetic conversations."""
    folder = tmp_path_factory.mktemp("published")
    (folder / "data").mkdir()
    n = 24
    table = pa.table(
        {
            "id": [f"p{i}" for i in range(n)],
            "kind": ["reasoning"] * n,
            "messages": [_conversation(i) for i in range(n)],
            "run_id": ["run-a"] * n,
            "recipe_fingerprint": ["fp-a"] * n,
        }
    )
    pq.write_table(table, folder / "data" / "train-00000-of-00001.parquet")
    (folder / "README.md").write_text("card\n")
    return folder


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished run directory (older layout: manifest + data/ at the top): 8 kept traces
    stored as prompt + completion, one of them without a think block."""
    folder = tmp_path_factory.mktemp("run")
    (folder / "data").mkdir()
    (folder / "manifest.json").write_text(json.dumps({"run_id": "run-b"}))
    rows = [_problem(100 + i) for i in range(8)]
    completions = [answer for _, answer in rows]
    completions[3] = "The answer is 5."  # no think block: skipped, counted
    table = pa.table(
        {
            "id": [f"r{i}" for i in range(8)],
            "kind": ["reasoning"] * 8,
            "messages": [
                [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
                for q, _ in rows
            ],
            "completion": completions,
            "run_id": ["run-b"] * 8,
            "recipe_fingerprint": ["fp-b"] * 8,
        }
    )
    pq.write_table(table, folder / "data" / "part-00000.parquet")
    return folder


@pytest.fixture(scope="module")
def tiny_model(smollm2_folder, tmp_path_factory) -> Path:
    """A random two-layer Llama with SmolLM2's vocabulary and tokenizer, saved as a folder."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(smollm2_folder)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _recipe(tmp_path: Path, model: Path, datasets, *overrides: str):
    """A train recipe file in tmp_path with CPU-test settings, loaded with `overrides`."""
    path = tmp_path / "tiny-train.yaml"
    train_settings = {
        "model": str(model),
        "datasets": [{"path": str(p), "weight": w} for p, w in datasets],
        "chat_template": str(TEMPLATE),
        "pad_token": "<|endoftext|>",
        "learning_rate": 3.0e-3,
        "lr_scheduler": "constant",
        "warmup_ratio": 0.0,
        "per_device_batch_size": 2,
        "max_steps": 20,
        "save_steps": 10,
        "logging_steps": 2,
        "output_dir": str(tmp_path / "out"),
    }
    path.write_text(json.dumps({"train": train_settings}))  # JSON is YAML
    return load_train_recipe(str(path), list(overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model, published):
    """10 steps, then the same recipe with max_steps=20 in the same folder (a resume)."""
    base = tmp_path_factory.mktemp("trained")
    first = train(_recipe(base, tiny_model, [(published, 1)], "train.max_steps=10"))
    second = train(_recipe(base, tiny_model, [(published, 1)]))
    return base / "out", first, second


def test_a_few_steps_lower_the_loss(trained):
    _, first, second = trained
    assert first["global_step"] == 10 and second["global_step"] == 20
    assert first["first_loss"] > 5  # a random model over a 49k vocabulary: ~ln(49152) = 10.8
    assert second["last_loss"] < 0.6 * first["first_loss"]
    assert second["samples_per_second"] > 0 and second["tokens_per_second"] > 0
    assert second["max_length"] == 64 and second["overflow"]["over"] == 0


def test_resume_continues_from_the_last_checkpoint(trained):
    out, first, second = trained
    assert first["resumed_from_step"] == 0 and first["steps_this_run"] == 10
    assert second["resumed_from_step"] == 10 and second["steps_this_run"] == 10
    state = json.loads((out / "checkpoint-20" / "trainer_state.json").read_text())
    assert state["global_step"] == 20
    steps = [e["step"] for e in json.loads((out / LINEAGE).read_text())["train_loss"]]
    assert steps == list(range(2, 21, 2))  # one history across both runs, no step twice


def test_every_checkpoint_carries_the_lineage(trained, published):
    out, _, _ = trained
    _, data = load_sft_dataset([DatasetSpec(str(published))], 0)
    for step in (10, 20):
        lineage = json.loads((out / f"checkpoint-{step}" / LINEAGE).read_text())
        assert lineage["global_step"] == step
        assert lineage["dataset_fingerprint"] == data.fingerprint
        assert lineage["recipe"]["train"]["learning_rate"] == 3.0e-3
        assert lineage["recipe"]["train"]["max_steps"] == (10 if step == 10 else 20)
        (source,) = lineage["datasets"]
        assert source["rows"] == 24 and source["recipe_fingerprints"] == ["fp-a"]
        assert source["run_ids"] == ["run-a"] and source["layout"] == "published"
        assert lineage["max_length"] == 64 and lineage["lint"]["ok"] is True
        assert [e["step"] for e in lineage["train_loss"]][-1] == step


def test_the_final_folder_reloads_and_generates(trained):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = trained
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert "{% generation %}" in tokenizer.chat_template  # the training template travels along
    prompt = tokenizer.apply_chat_template(
        _conversation(1)[:1], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        ids = model.generate(**prompt, max_new_tokens=6, do_sample=False)
    assert ids.shape[1] > prompt["input_ids"].shape[1]


def test_a_checkpoint_of_other_data_is_not_resumed(trained, tiny_model, published, run_dir):
    out, _, _ = trained
    recipe = _recipe(out.parent, tiny_model, [(published, 1), (run_dir, 1)])
    with pytest.raises(TrainError, match="other recipe and dataset|other dataset"):
        train(recipe)


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if training gets as far as loading a model."""
    from transformers import AutoModelForCausalLM

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)


def test_pad_equal_to_eos_stops_before_the_model_loads(
    tmp_path, tiny_model, published, no_model_load
):
    recipe = _recipe(tmp_path, tiny_model, [(published, 1)], "train.pad_token=null")
    with pytest.raises(TrainError, match="eos_is_pad") as exc:
        train(recipe)
    assert "pad_token" in str(exc.value) and "'<|endoftext|>'" in str(exc.value)  # the fix
    assert "train.pad_token" in str(exc.value) and not (tmp_path / "out").exists()


def test_smollm2s_own_template_stops_before_the_model_loads(
    tmp_path, tiny_model, published, no_model_load
):
    from transformers import AutoTokenizer

    own = tmp_path / "smollm2.jinja"
    own.write_text(AutoTokenizer.from_pretrained(tiny_model).chat_template)
    recipe = _recipe(tmp_path, tiny_model, [(published, 1)], f"train.chat_template={own}")
    with pytest.raises(TrainError, match="no_generation_markers") as exc:
        train(recipe)
    assert "train.chat_template" in str(exc.value)


def test_overflow_is_refused_with_its_count(tmp_path, tiny_model, published, no_model_load):
    recipe = _recipe(tmp_path, tiny_model, [(published, 1)], "train.max_length=32")
    with pytest.raises(TrainError, match=r"24 of 24 sample\(s\) are longer than max_length 32"):
        train(recipe)


@pytest.mark.parametrize(
    ("lengths", "fixed", "cap", "chosen", "over", "how"),
    [
        ([10, 64, 65], None, 4096, 128, 0, "data"),  # smallest multiple of 64 holding all
        ([10, 20], None, 4096, 64, 0, "data"),
        ([100, 5000, 9000], None, 4096, 4096, 2, "cap"),  # capped: two would be cut
        ([100, 300], 256, 4096, 256, 1, "recipe"),  # a fixed max_length is kept, and counted
    ],
)
def test_max_length_is_chosen_from_the_data(lengths, fixed, cap, chosen, over, how):
    value, report = choose_max_length(lengths, fixed, cap)
    assert (value, report["over"], report["chosen_by"]) == (chosen, over, how)


def test_two_datasets_mix_by_weight(published, run_dir):
    specs = [DatasetSpec(str(published), 1), DatasetSpec(str(run_dir), 1)]
    ds, data = load_sft_dataset(specs, seed=0)
    assert ds.column_names == ["messages"] and ds.num_rows == data.rows == 31 == len(data.ids)
    pub, run = data.inputs
    assert (pub.rows, pub.taken, pub.repeated) == (24, 16, 0)  # down-sampled to its share
    assert (run.rows, run.taken, run.repeated) == (7, 15, 8)  # up-sampled: said, not silent
    assert run.skipped == {"no_think_block": 1} and run.layout == "run"
    assert run.recipe_fingerprints == ["fp-b"] and run.run_ids == ["run-b"]
    assert ds[24]["messages"][-1]["role"] == "assistant"  # prompt + completion joined
    assert data.ids.count("r0") >= 2 and "r3" not in data.ids

    _, same = load_sft_dataset(specs, seed=0)
    assert same.ids == data.ids and same.fingerprint == data.fingerprint
    _, other_seed = load_sft_dataset(specs, seed=1)
    assert other_seed.ids != data.ids and other_seed.fingerprint != data.fingerprint
    _, heavier = load_sft_dataset([DatasetSpec(str(published), 3), specs[1]], seed=0)
    assert [i.taken for i in heavier.inputs] == [23, 8] and heavier.fingerprint != data.fingerprint
    _, alone = load_sft_dataset([DatasetSpec(str(run_dir), 5)], seed=0)
    assert alone.rows == 7 and alone.inputs[0].repeated == 0  # one input: taken as it is


def test_lora_trains_and_saves_adapter_and_merged_model(tmp_path, tiny_model, published):
    from transformers import AutoModelForCausalLM

    recipe = _recipe(
        tmp_path,
        tiny_model,
        [(published, 1)],
        "train.max_steps=4",
        "train.lora={enabled: true, r: 4, alpha: 8, target_modules: [q_proj, v_proj]}",
    )
    summary = train(recipe)
    out = tmp_path / "out"
    assert summary["global_step"] == 4 and summary["last_loss"] is not None
    assert (out / "adapter" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert json.loads((out / LINEAGE).read_text())["recipe"]["train"]["lora"]["r"] == 4


def test_unknown_train_key_fails_with_a_close_match(tmp_path, tiny_model, published):
    with pytest.raises(RecipeError, match="unknown recipe key 'train.learning_rat' — did you mean"):
        _recipe(tmp_path, tiny_model, [(published, 1)], "train.learning_rat=1e-3")
    with pytest.raises(RecipeError, match="padding_free=true without train.packing"):
        _recipe(tmp_path, tiny_model, [(published, 1)], "train.padding_free=true")


def test_the_shipped_train_recipes_load():
    assert is_train_recipe("distill-smol") and not is_train_recipe("math-cot")
    smol = load_train_recipe("distill-smol").train
    assert smol.model == "smollm2-135m-instruct" and smol.pad_token == "<|endoftext|>"
    big = load_train_recipe("distill-7b").train
    assert (big.learning_rate, big.epochs, big.max_length) == (4.0e-5, 5, 32768)
    assert (big.lr_scheduler, big.warmup_ratio, big.bf16) == ("cosine_with_min_lr", 0.03, True)
    assert big.per_device_batch_size * big.gradient_accumulation_steps * 8 == 128


def test_lint_train_and_eval_from_the_command_line(tmp_path, tiny_model, published, smollm2_folder):
    """As a user runs them: lint refuses SmolLM2's stock tokenizer and passes with the shipped
    template and pad token; `factory train` a shipped recipe with overrides; `factory eval`
    the result, whose scores land next to the checkpoint with the training lineage."""
    from tests.helpers import factory

    stock = factory("lint", str(published), "--model", str(smollm2_folder))
    assert stock.returncode == 1, stock.stderr
    assert "eos_is_pad" in stock.stdout and "no_generation_markers" in stock.stdout
    fixed = factory(
        "lint", str(published), "--model", str(smollm2_folder),
        "--chat-template", str(TEMPLATE), "--pad-token", "<|endoftext|>",
    )  # fmt: skip
    assert fixed.returncode == 0 and "lint: ok" in fixed.stdout, fixed.stdout + fixed.stderr

    out = tmp_path / "student"
    trained = factory(
        "train", "recipe=distill-smol", f"train.model={tiny_model}",
        f"train.datasets=[{{path: {published}}}]", "train.max_steps=2", "train.save_steps=2",
        "train.per_device_batch_size=2", f"train.output_dir={out}",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    summary = trained.stdout[trained.stdout.rindex('{\n  "output_dir"') :].split("\nnext:")[0]
    assert json.loads(summary)["global_step"] == 2  # after the trainer's own log lines
    assert (out / "factory_train.json").is_file()

    scored = factory(
        "eval", str(out), "recipe=eval-arith", "source.limit=2", "teacher.max_new_tokens=8",
        "--k", "1",
    )  # fmt: skip
    assert scored.returncode == 0, scored.stderr
    scores = json.loads(next((out / "eval").glob("*/scores.json")).read_text())
    assert scores["metrics"]["problems"] == 2
    assert scores["lineage"]["training"]["dataset_fingerprint"]
