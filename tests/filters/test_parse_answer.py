"""Table of real SmolLM2-style outputs and the extraction policy's answer for each."""

from __future__ import annotations

import pytest

from factory.recipe import ParseConfig
from factory.record import Record
from factory.stage import Drop
from filters.parse_answer import ParseAnswer
from tests.helpers import trace

OK = [
    # (completion, reasoning, answer, think_tags)
    ("<think>\n4 + 3 = 7.\n</think>\nThe answer is \\boxed{7}.", "4 + 3 = 7.", "7", "both"),
    ("2 * 7 = 14.\n</think>\nThe answer is \\boxed{14}.", "2 * 7 = 14.", "14", "close_only"),
    ("<think>a</think>\\boxed{\\frac{1}{2}}", "a", "\\frac{1}{2}", "both"),
    ("<think>x</think>So \\boxed{3} and again \\boxed{ 3 }", "x", "3", "both"),  # same answer twice
    ("<think>work</think>\n#### 1,234", "work", "1,234", "both"),
    ("<think>work</think>\nThe final answer is: 12.", "work", "12", "both"),
    ("<think>work</think>\nAnswer: $-4$", "work", "-4", "both"),
    # untagged, think=optional: the text before the answer line is the reasoning
    ("7 + 4 = 11.\nThe answer is 11.", "7 + 4 = 11.", "11", "none"),
    ("Add them: 2 + 2 = 4.\nSo the result is \\boxed{4}", "Add them: 2 + 2 = 4.", "4", "none"),
]


@pytest.mark.parametrize(("completion", "reasoning", "answer", "tags"), OK)
def test_parsed(completion, reasoning, answer, tags):
    out = ParseAnswer(ParseConfig()).process(_record(completion))
    assert not isinstance(out, Drop), out
    assert (out.reasoning, out.answer, out.meta["think_tags"]) == (reasoning, answer, tags)
    assistant = out.messages[-1]
    assert assistant["role"] == "assistant"
    assert assistant["content"].startswith(f"<think>\n{reasoning}\n</think>\n\n")
    assert (
        assistant["content"].count("<think>") == 1 and assistant["content"].count("</think>") == 1
    )


DROPPED = [
    ("<think>\n4 + 3 = 7.\n</think>\nThe answer is \\boxed{7}.", "length", "truncated"),
    ("", "stop", "empty"),
    ("   \n", "stop", "empty"),
    ("<think>a</think><think>b</think>\\boxed{1}", "stop", "malformed_think"),
    ("<think>a</think>b</think>\\boxed{1}", "stop", "malformed_think"),
    ("preamble <think>a</think>\\boxed{1}", "stop", "malformed_think"),
    ("<think>\n2 - 7 = 3.", "stop", "unclosed_think"),
    ("<think>\nThe answer is \\boxed{4}", "stop", "unclosed_think"),  # answer only inside think
    ("2 - 7 = 1.\n</think>", "stop", "no_answer"),
    ("<think>\n3 - 3 = 0.\n</think>", "stop", "no_answer"),
    ("6 - 1 = 5", "stop", "no_answer"),
    ("\\boxed{7}", "stop", "empty_reasoning"),
    ("The answer is \\boxed{1}.", "stop", "empty_reasoning"),
    ("<think> </think>\\boxed{1}", "stop", "empty_reasoning"),
    ("<think>hmm</think>\\boxed{1} or \\boxed{2}", "stop", "multiple_answers"),
    ("<think>hmm</think>\\boxed{5", "stop", "no_answer"),  # unterminated box is not an answer
]


@pytest.mark.parametrize(("completion", "finish", "reason"), DROPPED)
def test_dropped(completion, finish, reason):
    out = ParseAnswer(ParseConfig()).process(_record(completion, finish))
    assert out == Drop(reason)


def test_think_required():
    parse = ParseAnswer(ParseConfig(think="required"))
    assert parse.process(_record("7 + 4 = 11.\nThe answer is 11.")) == Drop("no_think")
    assert not isinstance(parse.process(_record("<think>7 + 4 = 11.</think> \\boxed{11}")), Drop)


def test_hostile_text_does_not_raise():
    parse = ParseAnswer(ParseConfig())
    for text in [
        "\\boxed{" * 20000,
        "}" * 1000 + "\\boxed{}",
        "\x00\ud800?",
        "<think>" + "x" * 10**6 + "</think>\\boxed{1}",
    ]:
        out = parse.process(_record(text))
        assert isinstance(out, (Drop, Record))


def _record(completion: str, finish: str = "stop") -> Record:
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}]
    return trace(completion, finish, messages=messages)
