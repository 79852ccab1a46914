"""`parse.answer=text`: a direct answer is the whole reply after any think block."""

from __future__ import annotations

import pytest

from factory.recipe import ParseConfig
from factory.record import Record
from factory.stage import Drop
from filters.parse_answer import ParseAnswer
from tests.helpers import trace

TEXT = ParseConfig(answer="text")

OK = [
    # (completion, reasoning, answer, think_tags, assistant turn)
    ("Paris", "", "Paris", "none", "<think>\n\n</think>\n\nParis"),
    (
        "  The capital of France is Paris.\n",
        "",
        "The capital of France is Paris.",
        "none",
        "<think>\n\n</think>\n\nThe capital of France is Paris.",
    ),
    ("Line one.\nLine two.", "", "Line one.\nLine two.", "none", None),
    (
        "<think>\nFrance's capital.\n</think>\n\nParis.",
        "France's capital.",
        "Paris.",
        "both",
        "<think>\nFrance's capital.\n</think>\n\nParis.",
    ),
    ("recall it</think>Paris", "recall it", "Paris", "close_only", None),
    ("<think></think>Paris", "", "Paris", "both", "<think>\n\n</think>\n\nParis"),
    ("<think>\n\n</think>\n\n1969", "", "1969", "both", "<think>\n\n</think>\n\n1969"),
    # no boxed / "the answer is" needed, and one is not extracted: the reply is the answer
    ("The answer is \\boxed{8}.", "", "The answer is \\boxed{8}.", "none", None),
]


@pytest.mark.parametrize(("completion", "reasoning", "answer", "tags", "turn"), OK)
def test_parsed(completion, reasoning, answer, tags, turn):
    out = ParseAnswer(TEXT).process(_record(completion))
    assert not isinstance(out, Drop), out
    assert (out.reasoning, out.answer, out.meta["think_tags"]) == (reasoning, answer, tags)
    assistant = out.messages[-1]
    assert assistant == {
        "role": "assistant",
        "content": turn or f"<think>\n{reasoning}\n</think>\n\n{answer}",
    }
    assert assistant["content"].count("<think>") == assistant["content"].count("</think>") == 1
    assert out.messages[:-1] == _record(completion).messages  # the prompt turns stay as they were


DROPPED = [
    ("Paris", "length", "truncated"),
    ("<think>hmm</think>Paris", "length", "truncated"),
    ("", "stop", "empty"),
    (" \n ", "stop", "empty"),
    ("<think>I know this.</think>", "stop", "no_answer"),
    ("<think>I know this.</think>\n  \n", "stop", "no_answer"),
    ("just thinking</think>", "stop", "no_answer"),
    ("<think>a</think><think>b</think>Paris", "stop", "malformed_think"),
    ("<think>a</think>Paris</think>", "stop", "malformed_think"),
    ("Sure! <think>a</think>Paris", "stop", "malformed_think"),
    ("<think>\nThe capital is", "stop", "unclosed_think"),
]


@pytest.mark.parametrize(("completion", "finish", "reason"), DROPPED)
def test_dropped(completion, finish, reason):
    assert ParseAnswer(TEXT).process(_record(completion, finish)) == Drop(reason)


def test_think_required_still_needs_a_block():
    parse = ParseAnswer(ParseConfig(think="required", answer="text"))
    assert parse.process(_record("Paris")) == Drop("no_think")
    assert parse.process(_record("<think></think>Paris")).answer == "Paris"


def test_math_mode_still_needs_reasoning():
    """The same bare reply that text mode keeps is not a reasoning trace in math mode."""
    assert ParseAnswer(ParseConfig()).process(_record("The answer is 8.")) == Drop(
        "empty_reasoning"
    )
    assert ParseAnswer(TEXT).process(_record("The answer is 8.")).answer == "The answer is 8."


def _record(completion: str, finish: str = "stop") -> Record:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]
    return trace(completion, finish, messages=messages)
