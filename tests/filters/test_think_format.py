"""Table of completions and the think-format verdict for each (None: kept)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from factory.stage import Drop
from filters.think_format import ThinkFormat
from tests.helpers import trace

COT = "<think>\nWe need 3 + 4. That is 7.\n</think>\nThe answer is \\boxed{7}."
BIG = "<think>" + "x" * 10_000_000 + "</think>\\boxed{1}"

REQUIRED = [
    pytest.param(COT, "stop", None, id="clean"),
    pytest.param(" \n\t" + COT, "stop", None, id="leading_whitespace"),
    pytest.param("2 * 7 = 14.\n</think>\n\\boxed{14}", "stop", None, id="open_tag_in_prompt"),
    pytest.param("<think>🤔 hmm 😀</think>👍 \\boxed{1}", "stop", None, id="emoji"),
    pytest.param("<think>\ud800\x00</think>\udfff", "stop", None, id="lone_surrogates"),
    pytest.param(BIG, "stop", None, id="10MB"),
    pytest.param(COT, "length", "truncated", id="truncated"),
    pytest.param(None, "length", "truncated", id="truncated_none"),
    pytest.param("The answer is 7.", "stop", "missing_think", id="no_tags"),
    pytest.param("", "stop", "missing_think", id="empty"),
    pytest.param(None, "stop", "missing_think", id="none"),
    pytest.param("<think>\n2 - 7 = 3.", "stop", "unclosed_think", id="unclosed"),
    pytest.param("<think>" + "x" * 10_000_000, "stop", "unclosed_think", id="unclosed_10MB"),
    pytest.param("a</think>b<think>c", "stop", "unclosed_think", id="open_after_close"),
    pytest.param("<think>a</think><think>b</think>c", "stop", "multiple_think", id="two_blocks"),
    pytest.param("<think>a</think>b</think>c", "stop", "multiple_think", id="two_closes"),
    pytest.param("<think><think>a</think>b", "stop", "multiple_think", id="two_opens"),
    pytest.param("Sure! <think>a</think>b", "stop", "text_before_think", id="preamble"),
    pytest.param("<think> \n </think>\\boxed{1}", "stop", "empty_think", id="empty_block"),
    pytest.param("</think>\\boxed{1}", "stop", "empty_think", id="empty_close_only"),
    pytest.param("<think>work</think>  \n", "stop", "no_final_answer", id="nothing_after"),
    pytest.param("work\n</think>", "stop", "no_final_answer", id="close_only_nothing_after"),
]

OPTIONAL = [
    pytest.param("7 + 4 = 11.\nThe answer is 11.", None, id="no_tags_kept"),
    pytest.param(COT, None, id="tags_kept"),
    pytest.param("", "no_final_answer", id="empty"),
    pytest.param(None, "no_final_answer", id="none"),
    pytest.param(" \n ", "no_final_answer", id="blank"),
    pytest.param("<think>a", "unclosed_think", id="unclosed_still_fails"),
    pytest.param("<think>a</think>", "no_final_answer", id="nothing_after"),
    pytest.param("x <think>a</think>b", "text_before_think", id="preamble_still_fails"),
    pytest.param("<think>a</think>b<think>c</think>d", "multiple_think", id="two_blocks"),
]


@pytest.mark.parametrize(("completion", "finish", "reason"), REQUIRED)
def test_require_think(completion, finish, reason):
    _check(ThinkFormat(SimpleNamespace(require_think=True)), completion, finish, reason)


@pytest.mark.parametrize(("completion", "reason"), OPTIONAL)
def test_think_optional(completion, reason):
    _check(ThinkFormat(SimpleNamespace(require_think=False)), completion, "stop", reason)


def _check(stage: ThinkFormat, completion: str | None, finish: str, reason: str | None) -> None:
    record = trace(completion, finish)
    out = stage.process(record)
    assert out == (record if reason is None else Drop(reason))
