"""`factory show`: traces found by id or predicate, kept and dropped, rendered as panels that
hold every section (problem, folded reasoning, answer vs gold, verdicts, dedup cluster,
contamination evidence, journey and selection metadata), in plain text off a terminal."""

from __future__ import annotations

import io
import json
import re

import pytest
from rich.console import Console

from factory.inspect_traces import TraceQueryError, find_traces, fold_lines, render_trace
from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from factory.teachers.base import Sample
from tests.helpers import factory, file_overrides
from tests.test_journey_math import MistakenTeacher
from tests.test_journey_math import _recipe as journey_recipe

PLANTED = "the quick brown fox jumps over the lazy dog near the river bank today"


class ShowTeacher:
    """ "Calculate a + b.", two samples: sample 0 right, sample 1 one too many, except
    b == 2 (both right, the same text: a duplicate) and b == 9 (both right: a majority).
    b == 3 copies a benchmark sentence, b == 4 thinks for 31 lines, b == 5 writes markup."""

    model_name = "fake"

    def generate(self, requests, cfg):
        for request in requests:
            problem = request.messages[-1]["content"]
            a, b = (int(x) for x in re.findall(r"(\d+) \+ (\d+)", problem)[0])
            answer = a + b if request.sample_index == 0 or b in (2, 9) else a + b + 1
            lines = [f"Step {i}: adding {a} and {b}." for i in range(30 if b == 4 else 2)]
            lines += [PLANTED] if b == 3 else []
            lines += ["[bold]not markup[/bold]"] if b == 5 else []
            who = "" if b == 2 else f" sample {request.sample_index}"
            text = (
                "<think>\n" + "\n".join(lines) + f"\nSo{who} it is {answer}.\n</think>\n\n"
                f"The answer is \\boxed{{{answer}}}."
            )
            yield request, Sample(text, 10, 20, "stop")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """q0…q5 "Calculate i + (i+1)." with gold, u0 "Calculate 7 + 9." without; one benchmark
    item that shares 8 words with q2's completions."""
    tmp = tmp_path_factory.mktemp("show")
    rows = [
        {"id": f"q{i}", "question": f"Calculate {i} + {i + 1}.", "answer": str(2 * i + 1)}
        for i in range(6)
    ] + [{"id": "u0", "question": "Calculate 7 + 9.", "answer": None}]
    (tmp / "p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp / "bench.jsonl").write_text(json.dumps({"question": f"Riddle: {PLANTED}?"}) + "\n")
    keys = {
        "teacher.n": "2",
        "dedup.problems.near": "false",
        "dedup.traces.near": "false",
        "decontaminate.enabled": "true",
        "decontaminate.benchmarks": f"[{{name: planted, path: {tmp}/bench.jsonl, "
        "text_field: question}]",
        "select.majority_vote.enabled": "true",
        "select.enabled": "true",
        "select.k": "2",
    }
    recipe = load_recipe("math-cot", file_overrides(tmp / "p.jsonl", **keys))
    run_recipe(recipe, tmp / "run", teacher=ShowTeacher())
    return tmp / "run"


@pytest.fixture(scope="module")
def journey_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("journey")
    recipe = journey_recipe(tmp, **{"journey.share": "0.4", "decontaminate.enabled": "false"})
    run_recipe(recipe, tmp / "run", teacher=MistakenTeacher())
    return tmp / "run"


def _text(row, fold: int | None = 8) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render_trace(row, 120, fold=fold))
    # the panel's inside, without its side borders and padding
    lines = console.export_text().splitlines()
    return "\n".join(re.sub(r"^│ |\s*│$", "", line).rstrip() for line in lines) + "\n"


def _one(run, where: str) -> dict:
    rows = find_traces(run, where=where)
    assert len(rows) == 1, rows
    return rows[0]


def test_a_kept_trace_by_id_shows_every_section(run):
    id_ = _one(run, "problem_id = 'p:q0' AND kept")["id"]
    [row] = find_traces(run, id=id_)
    text = _text(row)
    for part in (
        f"reasoning {id_}",  # panel title: kind and id
        "problem_id  p:q0",
        "sample_index  0",
        "teacher_model  fake",
        "source         p",
        "status      kept",
        "problem\n",
        "Calculate 0 + 1.",
        "reasoning\n",
        "Step 1: adding 0 and 1.",
        "final answer  1",
        "gold          1",
        "verdicts",
        "math        pass       exact_number    primary",
        f"cluster {id_}: survivor",
        "selection",
        "pass_rate  0.5",
        "samples    2",
        "think_tags     both",
    ):
        assert part in text, part
    assert "contamination" not in text and "journey" not in text


def test_rejected_traces_show_stage_reason_and_evidence(run):
    wrong = _text(_one(run, "problem_id = 'p:q0' AND NOT kept"))
    assert "status      dropped (verify: wrong_answer)" in wrong
    assert "final answer  2" in wrong and "gold          1" in wrong
    assert "math        fail       wrong_answer    primary" in wrong
    assert "no cluster (not deduplicated" in wrong

    survivor = _one(run, "problem_id = 'p:q1' AND kept")["id"]
    dup = _text(_one(run, "problem_id = 'p:q1' AND NOT kept"))
    assert "dropped (dedup_traces: duplicate_exact)" in dup
    assert f"cluster {survivor}: duplicate of {survivor}" in dup

    leaked = _one(run, "drop_reason = 'contaminated:planted'")
    [by_id] = find_traces(run, id=leaked["id"])
    text = _text(by_id)
    assert "dropped (decontaminate_traces: contaminated:planted)" in text
    assert re.search(
        r"contamination\n\s+benchmark\s+item\s+field\s+matched n-gram\n"
        r"\s+planted\s+0\s+completion\s+the quick brown fox jumps over the lazy\n",
        text,
    )


def test_pseudo_labels_are_marked(run):
    rows = find_traces(run, where="pseudo_label")
    assert [r["problem_id"] for r in rows] == ["p:u0", "p:u0"]
    text = _text(rows[0])
    assert "gold          16  (pseudo-label: samples' majority vote, 2 votes, share 1.0)" in text
    assert "pseudo-label" not in _text(_one(run, "problem_id = 'p:q0' AND kept"))


def test_where_limit_and_order(run):
    failed = find_traces(run, where="verdict = 'fail'", limit=100)
    assert len(failed) == 5 and {r["drop_reason"] for r in failed} == {"wrong_answer"}
    assert [r["problem_id"] for r in failed] == ["p:q0", "p:q2", "p:q3", "p:q4", "p:q5"]
    assert len(find_traces(run, where="verdict = 'fail'", limit=2)) == 2
    everything = find_traces(run, limit=100)
    assert len(everything) == 7 + 7  # kept first, then rejects
    assert [r["kept"] for r in everything] == [True] * 7 + [False] * 7
    kept = find_traces(run, where="kind = 'reasoning'", limit=100, include_rejects=False)
    assert len(kept) == 7 and all(r["kept"] for r in kept)
    assert isinstance(kept[0]["meta"], dict)  # parsed from its JSON


def test_reasoning_folds_unless_full(run):
    row = _one(run, "problem_id = 'p:q3' AND kept")  # 30 steps and a last line: 31 lines
    folded = _text(row, fold=8)
    assert "Step 7: adding 3 and 4." in folded and "Step 23: adding 3 and 4." in folded
    assert "Step 8: adding" not in folded and "Step 22: adding" not in folded
    assert "… 15 lines folded (--full shows them) …" in folded
    full = _text(row, fold=None)
    assert all(f"Step {i}: adding 3 and 4." in full for i in range(30)) and "folded" not in full
    assert fold_lines("a\nb\nc\nd\ne", 2) == ("a\nb\nc\nd\ne", 0)  # one hidden line: not folded
    assert fold_lines("a\nb\nc\nd\ne\nf", 2) == (
        "a\nb\n… 2 lines folded (--full shows them) …\ne\nf",
        2,
    )


def test_model_text_is_not_read_as_markup(run):
    text = _text(_one(run, "problem_id = 'p:q4' AND kept"))
    assert "[bold]not markup[/bold]" in text


def test_journey_rows_show_their_sources(journey_run):
    row = find_traces(journey_run, where="kind = 'journey'", limit=1)[0]
    journey = row["meta"]["journey"]
    text = _text(row, fold=None)
    assert f"journey {row['id']}" in text
    assert (
        "journey\n"
        f"wrong attempt  {journey['wrong_id']} (answered {journey['wrong_answer']})\n"
        f"right path     {journey['right_id']}\n"
        "cut            first_error\n"
        f"bridge         line {journey['bridge']} of journey.bridges\n"
    ) in text
    [wrong] = find_traces(journey_run, id=journey["wrong_id"])  # the ids lead to both sources
    [right] = find_traces(journey_run, id=journey["right_id"])
    assert (wrong["kept"], wrong["drop_reason"], right["kept"]) == (False, "wrong_answer", True)
    assert "no cluster (journey rows are built after dedup)" in text
    assert "status      kept" in text


def test_a_bad_predicate_names_it_and_the_columns(run):
    with pytest.raises(TraceQueryError) as err:
        find_traces(run, where="nope = 1")
    message = str(err.value)
    assert message.startswith("--where 'nope = 1': Binder Error")
    assert "columns: id, problem_id, source, kind, problem, gold" in message
    assert "stage, drop_reason" in message and "kept" in message
    with pytest.raises(TraceQueryError, match=r"--where 'verdict = ': Parser Error"):
        find_traces(run, where="verdict = ")


def test_an_unknown_id_suggests_a_prefix_search(run):
    with pytest.raises(TraceQueryError) as err:
        find_traces(run, id="0123456789abcdef")
    assert str(err.value) == (
        f"no trace or reject has id '0123456789abcdef' in {run}; "
        "search by prefix: --where \"id LIKE '012345%'\""
    )
    prefix = _one(run, "problem_id = 'p:q0' AND kept")["id"][:7]
    with pytest.raises(TraceQueryError, match=rf"\(1 id\(s\) start with it\); .*LIKE '{prefix}%'"):
        find_traces(run, id=prefix)
    with pytest.raises(TraceQueryError, match="not both"):
        find_traces(run, id=prefix, where="kept")


def test_the_command_prints_plain_text(run):
    id_ = _one(run, "problem_id = 'p:q3' AND NOT kept")["id"]
    shown = factory("show", str(run), "--id", id_)
    assert shown.returncode == 0, shown.stderr
    assert "\x1b[" not in shown.stdout
    assert f"reasoning {id_}" in shown.stdout and "dropped (verify: wrong_answer)" in shown.stdout
    assert "lines folded" in shown.stdout and shown.stdout.endswith("1 row(s) shown\n")
    full = factory("show", str(run), "--id", id_, "--full")
    assert "lines folded" not in full.stdout and "Step 15: adding 3 and 4." in full.stdout

    some = factory("show", str(run), "--where", "NOT kept", "--limit", "3")
    assert some.returncode == 0 and some.stdout.count("╭─ reasoning") == 3
    assert some.stdout.endswith("3 row(s) shown (the first 3; --limit N for more)\n")
    kept = factory("show", str(run), "--kept-only", "--where", "problem_id = 'p:q0'")
    assert kept.stdout.count("╭─ reasoning") == 1 and "dropped" not in kept.stdout

    bad = factory("show", str(run), "--where", "nope = 1")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --where 'nope = 1': Binder Error")
    unknown = factory("show", str(run), "--id", "zzz")
    assert unknown.returncode == 2
    assert (
        "no trace or reject has id 'zzz'" in unknown.stderr and "id LIKE 'zzz%'" in unknown.stderr
    )
