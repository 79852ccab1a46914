"""The verify stage with several verifiers: math + an LLM judge through the openai backend
(a loopback judge double that grades by arithmetic but is lenient on answers ending in 7),
verdict columns, the agreement matrix in stats, and the `all` policy."""

from __future__ import annotations

import duckdb
import pytest

from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from factory.stats import run_stats
from filters.judge import judge_verdict
from filters.verify import LabelChecker
from tests.factory.teachers.fault_server import Faults, FaultServer
from tests.helpers import REPO, loopback_overrides, problems_file

PROBLEMS = 60


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("CORRECT", ("pass", "judge_correct")),
        ("The answer is INCORRECT.", ("fail", "judge_incorrect")),
        ("At first INCORRECT, but on reflection CORRECT", ("pass", "judge_correct")),
        ("correct-ish", ("unverifiable", "judge_unclear")),
        ("", ("unverifiable", "judge_unclear")),
    ],
)
def test_judge_reply(reply, verdict):
    assert judge_verdict(reply) == verdict


def _expected() -> tuple[int, int]:
    """(samples the teacher answers wrong, of those the ones ending in 7) over the problems."""
    wrong = lenient = 0
    for i in range(PROBLEMS):
        a, b = i // 50, i % 50 + 1
        if (a + b) % 3 == 0:  # the teacher double's wrong_every=3: it answers a + b + 1
            wrong += 1
            lenient += str(a + b + 1).endswith("7")
    return wrong, lenient


def _run(tmp_path, policy: str, **judge_faults):
    problems = problems_file(tmp_path / "p.jsonl", PROBLEMS)
    with (
        FaultServer(Faults()) as teacher,
        FaultServer(Faults(judge=True, **judge_faults)) as judge,
    ):
        recipe = load_recipe(
            "math-cot",
            [
                *loopback_overrides(teacher.url, problems),
                "teacher.n=1",
                "dedup.problems.near=false",
                "dedup.traces.near=false",
                "verify.verifiers=[math, judge]",
                f"verify.policy={policy}",
                "verify.judge.teacher.backend=openai",
                "verify.judge.teacher.model=judge",
                f"verify.judge.teacher.base_url={judge.url}",
            ],
        )
        manifest = run_recipe(recipe, tmp_path / "run")
    return manifest, run_stats(tmp_path / "run")


def test_math_and_judge_verdicts_are_columns_and_their_agreement_is_reported(tmp_path):
    manifest, stats = _run(tmp_path, "primary", judge_lenient="7")
    wrong, lenient = _expected()
    assert manifest["rows"]["traces"] == PROBLEMS - wrong  # math decides
    (pair,) = stats["verifier_agreement"]
    assert (pair["a"], pair["b"]) == ("judge", "math")
    assert pair["matrix"] == {
        "pass/pass": PROBLEMS - wrong,
        "fail/fail": wrong - lenient,
        "pass/fail": lenient,  # the judge is fooled where math is not
    }
    assert pair["agreement"] == round((PROBLEMS - lenient) / PROBLEMS, 4)
    out = tmp_path / "run"
    rows = duckdb.sql(
        f"SELECT verdicts FROM read_parquet('{out}/data/*.parquet') LIMIT 1"
    ).fetchall()
    assert [v["verifier"] for v in rows[0][0]] == ["math", "judge"]


def test_policy_all_drops_what_any_verifier_fails(tmp_path):
    manifest, _ = _run(tmp_path, "all", judge_harsh="5")
    wrong, _ = _expected()
    harsh = sum(
        (i // 50 + i % 50 + 1) % 3 != 0 and str(i // 50 + i % 50 + 1).endswith("5")
        for i in range(PROBLEMS)
    )
    assert harsh > 0
    assert manifest["rows"]["traces"] == PROBLEMS - wrong - harsh
    verify = {s["name"]: s for s in manifest["stages"]}["verify"]
    assert verify["drops"] == {"wrong_answer": wrong, "judge:fail": harsh}


def test_label_checker_reads_the_inputs_own_labels():
    from factory.record import Record

    def rec(label):
        return Record(problem_id="p", source="s", problem="q", gold="1", meta={"label": label})

    verdicts = LabelChecker().check([rec(True), rec("incorrect"), rec(1), rec(None)])
    assert [v for v, _ in verdicts] == ["pass", "fail", "pass", "unverifiable"]


def test_judge_through_the_real_embedded_teacher(smollm2):
    """The real path: SmolLM2 on the transformers backend as the judge. It is a weak judge, so
    only the contract is checked: one well-formed verdict per record, nothing raised."""
    from factory.recipe import JudgeConfig, TeacherConfig
    from factory.record import Record
    from filters.judge import JudgeChecker

    cfg = JudgeConfig(teacher=TeacherConfig(temperature=0.0, n=1, max_new_tokens=16))
    prompt = (REPO / "recipes" / "prompts" / "judge.txt").read_text()
    checker = JudgeChecker(cfg, prompt)
    checker._teacher = smollm2  # the session's loaded model, not a second copy
    records = [
        Record(problem_id="p", source="s", problem="What is 2 + 3?", gold="5", id="a", answer=a)
        for a in ("5", "7")
    ]
    verdicts = checker.check(records)
    assert len(verdicts) == 2
    assert all(
        v in {"pass", "fail", "unverifiable"} and r.startswith("judge_") for v, r in verdicts
    )
