"""Journey samples: the arithmetic step checker, the cut, the record's shape, and the stage on
real parse + math verify (pairs re-verified, share cap, determinism, bridge variety)."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import pytest

from factory.errors import RecipeError
from factory.publish import conversation_problem
from factory.recipe import JourneyConfig, ParseConfig, VerifyConfig
from factory.record import Record
from factory.stage import Drop, chain
from filters.journey import (
    Journey,
    build_journey,
    cut_wrong_attempt,
    evaluate,
    first_wrong_step,
    journey_id,
    load_bridges,
)
from filters.parse_answer import ParseAnswer
from filters.verify import Verify
from filters.verify_math import MathChecker

REPO = Path(__file__).resolve().parents[2]
BRIDGES = load_bridges((REPO / "recipes/prompts/journey-bridges.txt").read_text())

# --- the arithmetic step checker ------------------------------------------------------------

STEPS = [
    # (reasoning, (the wrong step as read, its stated result) or None)
    ("12 * 4 = 48\n48 + 5 = 53", None),
    ("12 * 4 = 46\n46 + 5 = 51", ("12 * 4 = 46", "46")),
    ("3 × 4 = 12, then 12 ÷ 4 = 3", None),
    ("3 × 4 = 12, then 12 ÷ 4 = 4", ("12 ÷ 4 = 4", "4")),
    ("$3 \\times 4 = 13$", ("3 × 4 = 13", "13")),
    ("2 x 6 = 12 and 2 x 7 = 15", ("2 x 7 = 15", "15")),
    ("7 − 2 = 4", ("7 - 2 = 4", "4")),  # unicode minus
    ("1,000 + 250 = 1,250", None),
    ("1,000 + 250 = 1,350", ("1,000 + 250 = 1,350", "1,350")),
    ("1.5 + 1.25 = 2.75", None),
    ("1.5 + 1.2 = 2.6", ("1.5 + 1.2 = 2.6", "2.6")),
    ("10 / 3 = 3.33", None),  # rounded to the decimals shown
    ("2 / 3 = 0.66", None),  # truncated
    ("10 / 3 = 3.4", ("10 / 3 = 3.4", "3.4")),
    ("10 / 4 = 2", None),  # integer division / rounding: not called wrong
    ("10 / 3 = 4", ("10 / 3 = 4", "4")),
    ("(3 + 4) * 2 = 14", None),
    ("2*(3+4) = 2*7 = 15", ("2*7 = 15", "15")),  # a chain: each link checked
    ("2*(3+4) = 2*8 = 16", ("2*(3+4) = 2*8", "2*8")),
    ("$12.50 + $3 = $15.50", None),
    ("5 * $3 = $16", ("5 * 3 = 16", "16")),
    ("3 + 4 = 7. Then 7 * 2 = 15.", ("7 * 2 = 15", "15")),
    ("Step 2. 3+4 = 8", ("3+4 = 8", "8")),
    ("the total is 3 + 4 = 8 apples", ("3 + 4 = 8", "8")),
    ("-3 + 5 = 2", None),
    ("-3 + 5 = 3", ("-3 + 5 = 3", "3")),
    # not steps the checker can judge: skipped, never called wrong
    ("2^3 + 1 = 9", None),
    ("\\sqrt{16} - 2 = 2", None),
    ("\\frac{1}{2}+1 = 1.5", None),
    ("2 times 3 + 4 = 10", None),
    ("so x - 2 = 3", None),
    ("2x + 3 = 7", None),
    ("2(3 + 4) = 14", None),
    ("50 * 0.2 = 10%", None),
    ("20% of 50 = 10", None),
    ("3 km + 4 km = 7 km", None),
    ("3 + 4 = 7 times 2", None),
    ("1 / 0 = 5", None),
    ("Let a = 3 and b = 4, so a + b = 7.", None),
    ("No equations at all, just words.", None),
]


@pytest.mark.parametrize(("text", "expected"), STEPS)
def test_step_checker(text, expected):
    step = first_wrong_step(text)
    assert (None if step is None else (step.step, step.stated)) == expected
    if step is not None:  # the cut falls at the end of the step's line
        assert text[step.end : step.end + 1] in ("", "\n")


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("1 + 2 * 3", Fraction(7)),
        ("(1 + 2) * 3", Fraction(9)),
        ("8 / 4 / 2", Fraction(1)),
        ("10 - 2 - 3", Fraction(5)),
        ("-(2 - 5)", Fraction(3)),
        ("3 * -2", Fraction(-6)),
        ("1,234.5 × 2", Fraction(2469)),
        (".5 + .25", Fraction(3, 4)),
        ("7 ÷ 2", Fraction(7, 2)),
        ("2 · 3", Fraction(6)),
        ("1 / 0", None),
        ("2 (3)", None),
        ("1 +", None),
        ("(1 + 2", None),
        ("1,2 + 3", None),
        ("", None),
        ("(" * 60 + "1" + ")" * 60, None),  # deeper than MAX_DEPTH
    ],
)
def test_evaluate(expr, value):
    assert evaluate(expr) == value


def test_an_equation_the_problem_states_is_not_a_step():
    problem = "Tom claims 2 + 2 = 5. What is 2 + 3?"
    assert first_wrong_step("Tom says 2 + 2 = 5. But 2 + 3 = 5.", problem) is None
    assert first_wrong_step("Tom says 2 + 2 = 5.") is not None


@pytest.mark.parametrize(
    "text",
    [
        "9" * 10_000 + " + 1 = " + "1" + "0" * 10_000,  # 10k-digit numbers
        "(" * 50_000 + "1" + ")" * 50_000 + " = 1",  # deep parentheses
        ("(" * 30 + "1 + 1" + ")" * 30 + " = 2\n") * 2_000,  # nesting under the length cap
        "1 + 1 = 2 " * 100_000,  # 1 MB of correct steps on one line
        ("word " * 200 + "\n") * 1_000,  # 1 MB without equations
        "=" * 1_000_000,
        ("1 " * 99 + "= 1 ") * 2_500,
        "1 + 1 = " + "9" * 1_000_000,
    ],
)
def test_hostile_reasoning_is_fast_and_never_raises(text):
    t0 = time.perf_counter()
    first_wrong_step(text, text[:1000])
    cut_wrong_attempt(text, "q", "1", "first_error")
    assert time.perf_counter() - t0 < 3.0


# --- cutting ----------------------------------------------------------------------------------

WRONG = "First, 12 * 4 = 46.\nThen 46 + 5 = 51.\nSo the answer is 51."


@pytest.mark.parametrize(
    ("reasoning", "mode", "kept", "where"),
    [
        (WRONG, "first_error", "First, 12 * 4 = 46.", "first_error"),
        (WRONG, "whole", "First, 12 * 4 = 46.\nThen 46 + 5 = 51.", "whole"),
        # the arithmetic is right (the setup is not): no wrong step, cut whole
        (
            "12 * 4 = 48\n48 - 5 = 43\nThe answer is \\boxed{43}",
            "first_error",
            "12 * 4 = 48\n48 - 5 = 43",
            "whole",
        ),
        ("I guess.\n#### 7", "first_error", "I guess.", "whole"),
        ("The answer is 7.", "whole", "The answer is 7.", "whole"),  # nothing else to keep
        ("Just thinking aloud.", "whole", "Just thinking aloud.", "whole"),
    ],
)
def test_cut_wrong_attempt(reasoning, mode, kept, where):
    assert cut_wrong_attempt(reasoning, "q", "53", mode) == (kept, where)


# --- records ----------------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "Think inside <think> and </think>, then \\boxed{N}."}


def _sample(problem_id: str, index: int, completion: str, gold: str, parsed: bool) -> Record:
    """A generated sample; `parsed`: as the pipeline's parse stage leaves it."""
    record = Record(
        problem_id=problem_id,
        source="test",
        problem=f"Problem {problem_id}",
        gold=gold,
        id=f"{problem_id}-s{index}",
        sample_index=index,
        messages=[SYSTEM, {"role": "user", "content": f"Problem {problem_id}"}],
        completion=completion,
        teacher_model="teacher-x",
        temperature=0.7,
        finish_reason="stop",
    )
    if not parsed:
        return record
    out = ParseAnswer(ParseConfig()).process(record)
    assert isinstance(out, Record), out
    return out


def _right(pid: str, index: int, a: int, b: int, c: int, extra: str = "", parsed=True) -> Record:
    text = f"<think>\n{a} * {b} = {a * b}.{extra}\n{a * b} + {c} = {a * b + c}.\n</think>\n\n"
    answer = str(a * b + c)
    return _sample(pid, index, text + f"The answer is \\boxed{{{answer}}}.", answer, parsed)


def _wrong(pid: str, index: int, a: int, b: int, c: int, parsed=True) -> Record:
    bad = a * b + 1
    text = (
        f"<think>\nWe multiply: {a} * {b} = {bad}.\nThen {bad} + {c} = {bad + c}.\n"
        f"So the answer is {bad + c}.\n</think>\n\nThe answer is \\boxed{{{bad + c}}}."
    )
    return _sample(pid, index, text, str(a * b + c), parsed)


def test_build_journey_is_well_formed():
    wrong, right = _wrong("p1", 0, 12, 4, 5), _right("p1", 1, 12, 4, 5)
    bridge = "Wait — that gives {wrong_answer}, which doesn't look right."
    rec = build_journey(wrong, right, bridge, "first_error", bridge_index=3)
    assert rec.kind == "journey" and rec.id == journey_id("p1-s0", "p1-s1")
    assert rec.id == build_journey(wrong, right, bridge, "first_error", bridge_index=3).id
    assert rec.id != build_journey(right, wrong, bridge, "first_error", bridge_index=3).id
    assert len(rec.id) == 20
    assert rec.messages == right.messages[:-1]  # the prompt, without right's own turn
    turn = [*rec.messages, {"role": "assistant", "content": rec.completion}]
    assert conversation_problem(turn) is None  # exactly one think block, right roles
    assert rec.completion == (
        "<think>\nWe multiply: 12 * 4 = 49.\n\n"
        "Wait — that gives 49, which doesn't look right.\n\n"
        "12 * 4 = 48.\n48 + 5 = 53.\n</think>\n\nThe answer is \\boxed{53}."
    )
    assert (rec.reasoning, rec.answer) == (rec.completion[8:].split("\n</think>")[0], "53")
    assert rec.meta["journey"] == {
        "wrong_id": "p1-s0",
        "right_id": "p1-s1",
        "wrong_answer": "54",
        "cut": "first_error",
        "bridge": 3,
    }
    assert "think_tags" not in rec.meta and "verify_method" not in rec.meta
    assert (rec.verdict, rec.verdicts, rec.completion_tokens) == (None, [], None)
    assert (rec.problem_id, rec.gold, rec.teacher_model) == ("p1", "53", "teacher-x")
    assert wrong.kind == right.kind == "reasoning"  # the sources are not touched

    whole = build_journey(wrong, right, bridge, "whole", bridge_index=0)
    assert whole.meta["journey"]["cut"] == "whole"
    assert whole.completion.startswith(
        "<think>\nWe multiply: 12 * 4 = 49.\nThen 49 + 5 = 54.\n\nWait — that gives 54,"
    )
    assert (
        conversation_problem([*whole.messages, {"role": "assistant", "content": whole.completion}])
        is None
    )


def test_a_few_shot_prompt_is_kept_and_only_the_parsed_turn_replaced():
    shot = [
        {"role": "user", "content": "1 + 1?"},
        {"role": "assistant", "content": "<think>\n1 + 1 = 2\n</think>\n\n\\boxed{2}"},
    ]
    wrong, right = _wrong("p1", 0, 2, 3, 4), _right("p1", 1, 2, 3, 4)
    right.messages = [SYSTEM, *shot, *right.messages[1:]]
    rec = build_journey(wrong, right, "Hmm.", "whole", bridge_index=1)
    assert rec.messages == [SYSTEM, *shot, {"role": "user", "content": "Problem p1"}]
    assert (
        conversation_problem([*rec.messages, {"role": "assistant", "content": rec.completion}])
        is None
    )


# --- the stage ---------------------------------------------------------------------------------


@pytest.fixture
def verify():
    stage = Verify([MathChecker(VerifyConfig())])
    yield stage
    stage.close()


def _journey(verify: Verify, **cfg) -> Journey:
    return Journey(JourneyConfig(enabled=True, **cfg), BRIDGES, ParseAnswer(ParseConfig()), verify)


def _problems(n: int, wrong: bool = True, right: bool = True) -> list[Record]:
    """n problems, each with two right samples (different lengths) and one wrong one, raw."""
    out = []
    for i in range(n):
        pid, (a, b, c) = f"q{i:02d}", (i + 3, 7, i)
        if wrong:
            out.append(_wrong(pid, 0, a, b, c, parsed=False))
        if right:
            out.append(_right(pid, 1, a, b, c, " Let me be thorough here.", parsed=False))
            out.append(_right(pid, 2, a, b, c, parsed=False))
    return out


def _run(journey: Journey, verify: Verify, samples: list[Record]) -> tuple[list[Record], list]:
    """parse → verify → journey as the pipeline chains them; drops fed to observe_drop."""
    drops = []

    def on_drop(record, stage, drop):
        drops.append((record.id, stage, drop.reason))
        journey.observe_drop(record, stage, drop)

    stream, _ = chain(samples, [ParseAnswer(ParseConfig()), verify, journey], on_drop)
    return list(stream), drops


def test_pairs_are_built_and_reverified(verify):
    journey = _journey(verify, share=0.5)
    out, drops = _run(journey, verify, _problems(4))
    plain = [r for r in out if r.kind == "reasoning"]
    journeys = [r for r in out if r.kind == "journey"]
    assert [r.id for r in out[: len(plain)]] == [r.id for r in plain]  # plain first, in order
    assert len(plain) == 8 and len(journeys) == 4
    assert sorted(d[2] for d in drops) == ["wrong_answer"] * 4
    for rec in journeys:
        assert rec.verdict == "pass" and rec.verdicts[0]["verifier"] == "math"
        assert rec.meta["journey"]["wrong_id"] == f"{rec.problem_id}-s0"
        assert rec.meta["journey"]["right_id"] == f"{rec.problem_id}-s2"  # the shorter right
        assert rec.meta["journey"]["cut"] == "first_error"
        assert rec.messages[-1]["role"] == "assistant"  # parse wrote the training turn
        assert conversation_problem(rec.messages) is None
        assert rec.messages[-1]["content"] == rec.completion
    report = journey.report()
    assert report == {
        "problems_with_both": 4,
        "candidates": 4,
        "built": 4,
        "unparsed": 0,
        "unverified": 0,
        "over_share": 0,
        "cut_first_error": 4,
        "cut_whole": 0,
        "plain": 8,
        "share_achieved": round(4 / 12, 4),
    }


def test_a_right_trace_whose_answer_is_wrong_is_dropped_unverified(verify):
    journey = _journey(verify, share=0.9)
    dropped = []
    journey.on_drop = lambda record, stage, drop: dropped.append((record.kind, drop.reason))
    good_r, good_w = _right("a", 1, 3, 4, 5), _wrong("a", 0, 3, 4, 5)
    bad_r, bad_w = _right("b", 1, 3, 4, 5), _wrong("b", 0, 3, 4, 5)
    bad_r.gold = bad_w.gold = "99"  # bad_r "passed" upstream, but 17 is not the gold
    for w in (good_w, bad_w):
        w.verdict = "fail"
        journey.observe_drop(w, "verify", Drop("wrong_answer"))
    out = list(journey.run([good_r, bad_r]))
    assert [r.problem_id for r in out if r.kind == "journey"] == ["a"]
    assert dropped == [("journey", "journey_unverified")]
    assert journey.report()["unverified"] == 1


def test_only_wrong_answers_from_verify_are_observed(verify):
    journey = _journey(verify)
    right, wrong = _right("a", 1, 3, 4, 5), _wrong("a", 0, 3, 4, 5)
    wrong.verdict = "fail"
    journey.observe_drop(wrong, "dedup_traces", Drop("duplicate_near"))  # not a verify drop
    journey.observe_drop(wrong, "verify", Drop("unparsable_answer"))  # no wrong answer to show
    passing_elsewhere = _wrong("a", 3, 3, 4, 5)
    passing_elsewhere.verdict = "pass"  # policy `all`: the primary passed, another failed
    journey.observe_drop(passing_elsewhere, "verify", Drop("judge:fail"))
    assert list(journey.run([right])) == [right]
    assert journey.report()["problems_with_both"] == 0


@pytest.mark.parametrize(("share", "expected"), [(0.5, 6), (0.25, 2), (0.3, 3), (0.2, 1), (0.0, 0)])
def test_share_cap_is_exact(verify, share, expected):
    # 6 problems with both, 7 plain rows (one problem has only right samples, one each)
    samples = [s for s in _problems(6) if not s.id.endswith("-s1")] + [
        _right("z", 1, 2, 2, 2, parsed=False)
    ]
    journey = _journey(verify, share=share)
    out, drops = _run(journey, verify, samples)
    n_plain = sum(r.kind == "reasoning" for r in out)
    n_journey = sum(r.kind == "journey" for r in out)
    assert (n_plain, n_journey) == (7, expected)  # floor(share / (1 - share) * 7)
    assert n_journey / (n_plain + n_journey) <= share
    assert [d[2] for d in drops].count("journey_over_share") == 6 - expected
    report = journey.report()
    assert report["over_share"] == 6 - expected and report["built"] == expected
    assert report["share_achieved"] == round(expected / (7 + expected), 4)


def test_same_input_in_another_order_gives_the_same_rows(verify):
    ids = []
    for order in (1, -1):
        samples = _problems(8)[::order]
        journey = _journey(verify, share=0.2, seed=3)
        out, _ = _run(journey, verify, samples)
        ids.append(
            (
                sorted(r.id for r in out if r.kind == "reasoning"),
                [r.id for r in out if r.kind == "journey"],
                [r.completion for r in out if r.kind == "journey"],
            )
        )
    assert ids[0] == ids[1] and len(ids[0][1]) == 4  # floor(0.25 * 16)


def test_bridges_vary_across_problems_and_with_the_seed(verify):
    out, _ = _run(_journey(verify, share=0.5), verify, _problems(10))
    used = [r.meta["journey"]["bridge"] for r in out if r.kind == "journey"]
    assert len(used) == 10 and len(set(used)) >= 4
    for rec in out:
        if rec.kind == "journey":
            template = BRIDGES[rec.meta["journey"]["bridge"]]
            assert template.split("{wrong_answer}")[0] in rec.reasoning
    again, _ = _run(_journey(verify, share=0.5, seed=1), verify, _problems(10))
    assert used != [r.meta["journey"]["bridge"] for r in again if r.kind == "journey"]


@pytest.mark.parametrize(("wrong", "right"), [(False, True), (True, False)])
def test_problems_with_only_passes_or_only_failures_make_no_journey(verify, wrong, right):
    journey = _journey(verify, share=0.5)
    out, _ = _run(journey, verify, _problems(3, wrong=wrong, right=right))
    assert all(r.kind == "reasoning" for r in out) and len(out) == (6 if right else 0)
    assert journey.report()["candidates"] == 0 and journey.report()["share_achieved"] == (0.0)


def test_cut_whole_keeps_the_whole_attempt(verify):
    journey = _journey(verify, share=0.5, cut="whole")
    out, _ = _run(journey, verify, _problems(2))
    cuts = [r.meta["journey"]["cut"] for r in out if r.kind == "journey"]
    assert cuts == ["whole", "whole"]
    assert journey.report()["cut_whole"] == 2


# --- bridge templates --------------------------------------------------------------------------


def test_shipped_bridges_load():
    assert 12 <= len(BRIDGES) <= 20 and len(set(BRIDGES)) == len(BRIDGES)
    assert any("{wrong_answer}" in b for b in BRIDGES)
    assert not any(b.startswith("#") for b in BRIDGES)


def test_load_bridges_skips_comments_and_blank_lines():
    text = "# header\n\n  Wait — {wrong_answer}?  \n# more\nHmm, let me recheck.\n"
    assert load_bridges(text) == ["Wait — {wrong_answer}?", "Hmm, let me recheck."]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "b.txt holds no templates; write one reflection phrasing per line"),
        ("# only a comment\n\n", "b.txt holds no templates"),
        ("Wait, {answer} is wrong.", "b.txt:1: unknown slot {answer} .allowed: {wrong_answer}"),
        ("ok\nHmm {}", "b.txt:2: unknown slot {}"),
        ("Wait </think> again", "b.txt:1: .* cannot contain <think>"),
    ],
)
def test_load_bridges_refuses_bad_files(text, message):
    with pytest.raises(RecipeError, match=message):
        load_bridges(text, "b.txt")
