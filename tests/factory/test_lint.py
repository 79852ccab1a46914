"""`factory lint` catches each training trap on purpose-built broken datasets, tokenizers and
chat templates, and passes factory's own conversations with the shipped template.

The tokenizer is SmolLM2's, from the session's converted model folder (the `model_cache`
fixture; conversion runs once per session, ~25 s on an idle 2-core machine). Its stock form is
itself two traps: pad == EOS (`<|im_end|>`) and a template without `{% generation %}` markers.
The broken templates are ChatML variants written to fail one way each; the R1-like one strips
the reasoning as DeepSeek-R1-Distill's template does (`content.split('</think>')[-1]`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.lint import (
    LintError,
    lint_conversations,
    load_tokenizer,
    suggest_max_length,
)

TEMPLATE = Path(__file__).resolve().parents[2] / "recipes" / "templates" / "chatml-think.jinja"
PAD = "<|endoftext|>"


def conv(answer: str, user: str = "What is 2 + 3?", system: str | None = None) -> list[dict]:
    turns = [{"role": "system", "content": system}] if system else []
    return [*turns, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]


REASONING = "<think>\n2 plus 3 makes 5; check: 5 - 3 = 2.\n</think>\n\nThe answer is \\boxed{5}."
GOOD = [
    conv(REASONING, system="Think step by step."),
    conv("<think>\n\n</think>\n\nParis.", user="Capital of France?"),  # a knowledge row
    [  # two rounds: both assistant turns are trained, the last holds the think block
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": REASONING},
    ],
]
GOOD_IDS = ["reasoning", "knowledge", "two-rounds"]

# ChatML variants, each broken one way
_CHATML_OTHERS = (
    "{%- else %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
)
CONTENT_ONLY = (  # <|im_end|> outside the generation block: never trained
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}{{- message['content'] }}"
    "{%- endgeneration %}{{- '<|im_end|>\\n' }}" + _CHATML_OTHERS
)
NO_END_OF_TURN = (  # the assistant turn is never closed
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}{{- message['content'] }}"
    "{%- endgeneration %}{{- '\\n' }}" + _CHATML_OTHERS
)
WRONG_ROLE = (  # ShareGPT's role name: the generation block is never reached
    "{%- for message in messages %}{%- if message['role'] == 'gpt' %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}{{- message['content'] + '<|im_end|>' }}"
    "{%- endgeneration %}{{- '\\n' }}" + _CHATML_OTHERS
)
R1_LIKE = (  # DeepSeek-R1-Distill's way with assistant content, with generation markers
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'].split('</think>')[-1] %}"
    "{{- '<|im_start|>assistant\\n' }}{%- generation %}{{- content + '<|im_end|>' }}"
    "{%- endgeneration %}{{- '\\n' }}" + _CHATML_OTHERS
)
R1_LIKE_NO_MARKERS = (
    "{%- for message in messages %}{%- if message['role'] == 'assistant' %}"
    "{%- set content = message['content'].split('</think>')[-1] %}"
    "{{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}" + _CHATML_OTHERS
)


@pytest.fixture(scope="module")
def tokenizer(smollm2_folder):
    """SmolLM2's tokenizer fixed as `factory train` should use it: the shipped template and a
    pad token that is not EOS. Tests pass other templates as arguments, never mutate it."""
    return load_tokenizer(smollm2_folder, TEMPLATE, pad_token=PAD)


@pytest.fixture(scope="module")
def stock(smollm2_folder):
    """SmolLM2's tokenizer as it ships: pad == EOS, template without generation markers."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_folder)


def checks(report) -> dict[str, tuple[str, int]]:
    return {f.check: (f.severity, f.count) for f in report.findings}


def test_the_good_dataset_passes_with_the_shipped_template(tokenizer):
    report = lint_conversations(GOOD, tokenizer, ids=GOOD_IDS)
    assert report.findings == [] and report.errors() == [] and report.ok
    assert report.samples == 3 and report.template == "given"
    assert 30 < report.lengths["p50"] <= report.lengths["max"] < 200
    assert report.lengths["max_length"] == 1024 and report.lengths["over_max_length"] == 0.0
    assert report.suggested_max_length == 512


def test_the_stock_tokenizer_pads_with_eos_and_has_no_generation_markers(stock):
    report = lint_conversations(GOOD, stock, ids=GOOD_IDS)
    assert checks(report) == {
        "no_generation_markers": ("error", 3),
        "eos_is_pad": ("error", 3),
    }
    assert not report.ok
    messages = {f.check: f.message for f in report.findings}
    assert "'<|endoftext|>'" in messages["eos_is_pad"]  # the fix names a usable pad token
    assert "recipes/templates/chatml-think.jinja" in messages["no_generation_markers"]


def test_a_tokenizer_without_a_pad_token_is_padded_with_eos_by_trl(smollm2_folder):
    from transformers import AutoTokenizer

    bare = AutoTokenizer.from_pretrained(smollm2_folder)
    bare.pad_token = None
    (finding,) = lint_conversations(GOOD, bare, chat_template=TEMPLATE.read_text()).findings
    assert (finding.check, finding.severity) == ("eos_is_pad", "error")
    assert "no pad_token" in finding.message


@pytest.mark.parametrize(
    ("bad", "check"),
    [
        ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "bad_roles"),
        ([{"role": "user", "content": "2 + 3?"}], "bad_roles"),  # no assistant turn
        ([{"role": "assistant", "content": REASONING}], "bad_roles"),
        (
            [*conv(REASONING)[:1], {"role": "system", "content": "late"}, conv(REASONING)[1]],
            "bad_roles",
        ),
        (
            [{"role": "user", "content": "2 + 3?"}, {"role": "assistant", "content": None}],
            "bad_roles",
        ),
        ([], "bad_roles"),
        (conv("<think>a</think> b <think>c</think> 5"), "think_unbalanced"),  # two blocks
        (conv("<think>\nadding 2 and 3\n\nThe answer is 5."), "think_unbalanced"),  # unclosed
        (conv("</think> 5 <think>"), "think_unbalanced"),
        (conv("The answer is 5."), "think_unbalanced"),  # none
    ],
)
def test_malformed_conversations_are_named_with_their_sample(tokenizer, bad, check):
    report = lint_conversations([*GOOD, bad], tokenizer, ids=[*GOOD_IDS, "broken"])
    assert checks(report) == {check: ("error", 1)}
    assert report.findings[0].examples == ["broken"]


def test_two_think_blocks_are_counted_per_reason(tokenizer):
    bad = [conv("<think>a</think><think>b</think> 5"), conv("no think"), conv("<think>x")]
    (finding,) = lint_conversations(bad, tokenizer).findings
    assert (finding.check, finding.count, finding.examples) == (
        "think_unbalanced",
        3,
        ["0", "1", "2"],
    )
    for reason in ("several_think_blocks 1", "no_think_block 1", "unclosed_think 1"):
        assert reason in finding.message


def test_an_empty_assistant_turn_leaves_an_empty_loss_mask(tokenizer):
    """With the end-of-turn token outside the generation block, an empty answer has no
    trained token at all (the template's own trap, eos_missing, is reported for all)."""
    data = [*GOOD, conv("")]
    report = lint_conversations(
        data, tokenizer, chat_template=CONTENT_ONLY, ids=[*GOOD_IDS, "empty"]
    )
    found = checks(report)
    assert found["empty_loss_mask"] == ("error", 1)
    assert report.findings[
        [f.check for f in report.findings].index("empty_loss_mask")
    ].examples == ["empty"]
    assert found["eos_missing"] == ("error", 3)  # the empty one has no target to end on
    assert found["think_unbalanced"] == ("error", 1)  # an empty turn has no think block either


def test_a_template_that_never_reaches_its_generation_block_masks_every_sample_out(tokenizer):
    report = lint_conversations(GOOD, tokenizer, chat_template=WRONG_ROLE)
    assert checks(report) == {"empty_loss_mask": ("error", 3)}


@pytest.mark.parametrize(
    ("template", "says"),
    [
        (CONTENT_ONLY, "outside its {% generation %} block"),
        (NO_END_OF_TURN, "does not end with the EOS token '<|im_end|>'"),
    ],
)
def test_a_target_that_does_not_end_on_eos_is_caught(tokenizer, template, says):
    report = lint_conversations(GOOD, tokenizer, chat_template=template, ids=GOOD_IDS)
    (finding,) = report.findings
    assert (finding.check, finding.severity, finding.count) == ("eos_missing", "error", 3)
    assert says in finding.message and finding.examples == GOOD_IDS


def test_a_template_that_strips_the_reasoning_is_caught(tokenizer):
    report = lint_conversations(GOOD, tokenizer, chat_template=R1_LIKE, ids=GOOD_IDS)
    (finding,) = report.findings
    assert (finding.check, finding.count) == ("reasoning_dropped", 3)
    assert "split('</think>')" in finding.message


def test_without_markers_the_rendered_text_is_checked_for_the_reasoning(tokenizer):
    report = lint_conversations(GOOD, tokenizer, chat_template=R1_LIKE_NO_MARKERS)
    assert checks(report) == {
        "no_generation_markers": ("error", 3),
        "reasoning_dropped": ("error", 3),
    }


def test_a_template_trl_knows_is_linted_in_its_training_version(tokenizer):
    """TRL swaps in its own training version of templates it knows (here Qwen2.5's, which
    renders in SmolLM2's ChatML tokens): no no_generation_markers for those."""
    import trl

    qwen = (Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja").read_text()
    report = lint_conversations(GOOD, tokenizer, chat_template=qwen)
    assert report.template == "trl" and report.findings == []
    assert tokenizer.chat_template == TEMPLATE.read_text()  # restored after asking TRL


def test_over_long_samples_are_a_warning_with_the_max_length_that_cuts_none(tokenizer):
    long = conv("<think>\n" + "add one more; " * 300 + "\n</think>\n\n5")
    report = lint_conversations([*GOOD, long], tokenizer, ids=[*GOOD_IDS, "long"])
    (finding,) = report.findings
    assert (finding.check, finding.severity, finding.count) == ("over_max_length", "warning", 1)
    assert finding.examples == ["long"] and report.ok  # a warning: `factory train` decides
    longest = report.lengths["max"]
    assert 1024 < longest <= report.suggested_max_length == 1536
    assert f"max_length={report.suggested_max_length}" in finding.message
    assert "TRL's default" in finding.message
    assert report.lengths["over"] == {
        "1024": 0.25,
        "2048": 0.0,
        "4096": 0.0,
        "8192": 0.0,
        "32768": 0.0,
    }
    assert report.lengths["over_max_length"] == 0.25

    assert lint_conversations([*GOOD, long], tokenizer, max_length=1536).findings == []
    short = lint_conversations([*GOOD, long], tokenizer, max_length=64)
    tokens = [len(tokenizer.apply_chat_template(c)["input_ids"]) for c in [*GOOD, long]]
    assert checks(short) == {"over_max_length": ("warning", sum(n > 64 for n in tokens))}
    assert "as set" in short.findings[0].message


def test_to_dict_is_json_with_every_finding(stock):
    report = lint_conversations([*GOOD, conv("5")], stock)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is False and data["samples"] == 4 and data["suggested_max_length"] == 512
    assert set(data["lengths"]) == {"p50", "p95", "max", "max_length", "over_max_length", "over"}
    assert [f["check"] for f in data["findings"]] == [
        "no_generation_markers",
        "eos_is_pad",
        "think_unbalanced",
    ]
    assert data["findings"][2] == {
        "check": "think_unbalanced",
        "severity": "error",
        "message": report.findings[2].message,
        "count": 1,
        "examples": ["3"],
    }


@pytest.mark.parametrize(
    ("lengths", "suggested"),
    [
        ([], 512),
        ([10, 300], 512),
        ([512], 512),
        ([513], 768),
        ([700, 1000], 1024),
        ([1025], 1536),
        ([2000], 2048),
        ([2049], 3072),
        ([5000], 6144),
        ([40000], 49152),
    ],
)
def test_suggested_max_length(lengths, suggested):
    assert suggest_max_length(lengths) == suggested


def test_load_tokenizer(smollm2_folder, model_cache, tmp_path):
    alias = load_tokenizer("smollm2-135m-instruct", cache_dir=Path(model_cache))
    assert alias.pad_token == alias.eos_token == "<|im_end|>"  # as shipped
    fixed = load_tokenizer(smollm2_folder, str(TEMPLATE), pad_token=PAD)
    assert fixed.chat_template == TEMPLATE.read_text() and fixed.pad_token_id == 0
    with pytest.raises(LintError, match="not in the vocabulary"):
        load_tokenizer(smollm2_folder, pad_token="<nope>")
    with pytest.raises(LintError, match="does not exist"):
        load_tokenizer(smollm2_folder, tmp_path / "missing.jinja")
    with pytest.raises(LintError, match="cannot load a tokenizer"):
        load_tokenizer(tmp_path / "no-model")
