"""`factory report` (factory/report.py, report_data.py, report_charts.py): exact numbers of every
section over the warehouse test's runs (planted duplicates, a GSM8K leak, a price, two
verifiers, a published folder) plus a mix with a shortfall; the page is self-contained, escapes
model text and says why an empty section is empty. The page in a real browser:
test_report_browser.py."""

from __future__ import annotations

import os
import re

import pytest
import yaml

from factory.errors import FactoryError
from factory.mix import run_mix
from factory.mix_recipe import load_mix_recipe
from factory.pipeline import run_recipe
from factory.recipe import load_recipe
from factory.report import build_report
from factory.report_data import report_data
from factory.teachers.base import Sample
from tests.factory.test_warehouse import inputs  # noqa: F401  (the module fixture)
from tests.helpers import CannedTeacher, factory, file_overrides, problems_file

HOSTILE = "<script>alert('x')</script><img src=http://example.com/x.png>"


class HostileTeacher:
    """Always wrong, and writes markup and a remote image into its reasoning."""

    model_name = "fake"

    def generate(self, requests, cfg):
        for request in requests:
            text = f"<think>\n{HOSTILE} step {request.sample_index}\n</think>\n\n\\boxed{{-1}}"
            yield request, Sample(text, 5, 7, "stop")

    def close(self) -> None:
        pass


def _mix_of(run, folder, **settings):
    """A mix of `run` into one bucket that asks for 10 rows, with `settings` (e.g. max_tokens)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mix.yaml"
    bucket = {"name": "math", "target": 10, "inputs": [{"path": str(run)}]}
    path.write_text(yaml.safe_dump({"description": "t", "mix": {**settings, "buckets": [bucket]}}))
    run_mix(load_mix_recipe(str(path)), folder / "mix")
    return folder / "mix"


@pytest.fixture(scope="module")
def mix_run(inputs, tmp_path_factory):  # noqa: F811
    """The math run's 6 kept rows mixed into a bucket that asks for 10 (a shortfall of 4)."""
    return _mix_of(inputs[0], tmp_path_factory.mktemp("report-mix"))


@pytest.fixture(scope="module")
def long_mix(inputs, tmp_path_factory):  # noqa: F811
    """A mix of the math run with max_tokens 5: all 6 kept rows (20 tokens each) are too long."""
    return _mix_of(inputs[0], tmp_path_factory.mktemp("report-long-mix"), max_tokens=5)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-hostile")
    problems = problems_file(tmp / "p.jsonl", 3)
    keys = {"dedup.traces.near": "false", "dedup.problems.near": "false"}
    recipe = load_recipe("math-cot", file_overrides(problems, **keys))
    run_recipe(recipe, tmp / "run", teacher=HostileTeacher())
    return tmp / "run"


def test_the_numbers_of_one_run(inputs):  # noqa: F811
    math, _, _ = inputs
    d = report_data([math])
    (funnel,) = d["funnels"]
    names = [s["name"] for s in funnel["stages"]]
    assert names[:2] == ["problems", "has_gold"] and names[-1] == "dedup_traces"
    stages = {s["name"]: s for s in funnel["stages"]}
    assert stages["verify"]["drops"] == {"wrong_answer": 3}
    assert stages["dedup_traces"]["drops"] == {"duplicate_exact": 3}
    assert stages["decontaminate_problems"]["drops"] == {"contaminated:gsm8k_test": 1}
    # 12 samples, 6 kept; one source and one teacher
    assert [(r["group"], r["samples"], r["kept"]) for r in d["acceptance"]["source"]] == [
        ("problems", 12, 6)
    ]
    assert [(r["group"], r["kept"]) for r in d["acceptance"]["teacher"]] == [("fake", 6)]
    assert [r["group"] for r in d["acceptance"]["difficulty"]] == ["(none)"]  # a plain file
    assert {(v["verdict"], v["n"], v["kept"]) for v in d["verifiers"]} == {
        ("pass", 9, 6),
        ("fail", 3, 0),
    }
    h = d["lengths"]
    assert (sum(h["kept"]), sum(h["rejected"]), h["n"]) == (6, 6, 12)  # 20 tokens each
    assert h["median"] == {"kept": 20.0, "rejected": 20.0}
    r = d["reasoning_lengths"]  # every sample parsed: a reasoning share of its 20 tokens
    assert r["n"] == 12 and all(0 < m < 20 for m in r["median"].values())
    assert d["drops"]["totals"] == {"problems": 1, "samples": 6}  # the leak; 3 wrong + 3 dups
    top = {(r["stage"], r["drop_reason"]): r["n"] for r in d["drops"]["top"]}
    assert top == {
        ("verify", "wrong_answer"): 3,
        ("dedup_traces", "duplicate_exact"): 3,
        ("decontaminate_problems", "contaminated:gsm8k_test"): 1,
    }
    for ex in d["drops"]["examples"]:  # two real rows of each reason (one leak only)
        assert len(ex["rows"]) == (1 if ex["drop_reason"].startswith("contaminated") else 2)
    wrong = next(e for e in d["drops"]["examples"] if e["drop_reason"] == "wrong_answer")
    assert all(r["answer"] != r["gold"] and r["completion"] for r in wrong["rows"])
    assert d["agreement"] == []  # one verifier
    assert {(o["verdict"], o["outcome"], o["n"]) for o in d["outcomes"]} == {
        ("pass", "kept", 6),
        ("pass", "dropped at dedup_traces", 3),
        ("fail", "dropped at verify", 3),
    }
    assert [(c["size"], c["clusters"]) for c in d["clusters"]] == [(1, 3), (2, 3)]
    assert d["dedup"][0]["traces"]["duplicates"] == 3
    c = d["contamination"]
    assert [(r["benchmark"], r["level"], r["rows"]) for r in c["by_benchmark"]] == [
        ("gsm8k_test", "problems", 1)
    ]
    assert c["checked"][0]["benchmarks"] == {"gsm8k_test": 1319}
    ((cost,),) = [d["costs"]]
    assert (cost["kept"], cost["cost_usd"], cost["cost_per_kept_usd"]) == (6, 600.0, 100.0)
    assert (cost["prompt_tokens_per_kept"], cost["completion_tokens_per_kept"]) == (20.0, 40.0)
    assert d["mixes"] == []


def test_two_verifiers_give_a_confusion_matrix(inputs):  # noqa: F811
    _, reverify, _ = inputs
    d = report_data([reverify])
    cells = {(r["verdict_a"], r["verdict_b"]): r["n"] for r in d["agreement"]}
    assert {(r["verifier_a"], r["verifier_b"]) for r in d["agreement"]} == {("label", "math")}
    assert sum(cells.values()) == 12
    assert cells.get(("pass", "fail"), 0) + cells.get(("fail", "pass"), 0) == 1  # README: 1


def test_a_mix_shows_achieved_vs_target_and_is_not_counted_twice(inputs, mix_run):  # noqa: F811
    math, _, _ = inputs
    alone, both = report_data([math]), report_data([math, mix_run])
    ((m,),) = [both["mixes"]]
    assert m["unit"] == "samples"
    assert m["buckets"] == [
        {"name": "math", "target": 10, "achieved": 6, "available": 6, "shortfall": 4}
    ]
    # the mix's rows are the math run's samples under the same ids: every count is the same
    # as over the math run alone
    assert both["samples_from"] == [str(math)] and both["kept_only_rows"] == 0
    for key in COUNTED:
        assert both[key] == alone[key], key


COUNTED = (
    "acceptance", "verifiers", "outcomes", "agreement", "clusters", "lengths",
    "reasoning_lengths", "costs", "drops", "kept_only_rows",
)  # fmt: skip


def test_a_mix_drop_of_a_row_its_source_kept_is_no_drop(inputs, mix_run, long_mix):  # noqa: F811
    math, _, _ = inputs
    alone = report_data([math])
    for combo in ([math, long_mix], [math, mix_run, long_mix], [math, long_mix, mix_run]):
        d = report_data(combo)
        for key in COUNTED:
            assert d[key] == alone[key], (key, combo)
    # the too-long mix alone: its 6 rows are dropped samples, none kept
    d = report_data([long_mix])
    assert d["drops"]["totals"] == {"samples": 6} and d["kept_only_rows"] == 0
    assert [(r["samples"], r["kept"]) for r in d["acceptance"]["source"]] == [(6, 0)]
    # both mixes, no source: each row once, the kept copy before the dropped one
    d = report_data([mix_run, long_mix])
    assert d["drops"]["totals"] == {} and d["kept_only_rows"] == 6
    assert [(r["samples"], r["kept"]) for r in d["acceptance"]["source"]] == [(6, 6)]


def test_a_mix_without_its_source_run_counts_its_rows_as_kept(mix_run, tmp_path):
    d = report_data([mix_run])
    assert d["samples_from"] == [] and d["kept_only_rows"] == 6
    assert [(r["samples"], r["kept"]) for r in d["acceptance"]["source"]] == [(6, 6)]
    assert [(v["verdict"], v["n"], v["kept"]) for v in d["verifiers"]] == [("pass", 6, 6)]
    assert d["clusters"] == []  # a mix holds survivors only: no cluster sizes of its own
    assert d["costs"][0]["cost_usd"] is None  # a mix records no cost
    build_report([mix_run], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "6 of these samples are kept rows of a mix or published folder" in page
    assert "No dedup clusters: runs that generated samples record them" in page


def test_a_published_folder_alone(inputs, tmp_path):  # noqa: F811
    _, _, published = inputs
    result = build_report([published], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "A published folder: 6 kept rows" in page
    assert "6 of these samples are kept rows of a mix or published folder" in page
    assert "Nothing was dropped" in page
    assert result["charts"]  # acceptance, lengths, verdicts, costs still drawn


def test_the_page_is_self_contained_and_complete(inputs, mix_run, tmp_path):  # noqa: F811
    math, reverify, published = inputs
    result = build_report([math, reverify, published, mix_run], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    for section in result["sections"]:
        assert f'<section id="{section}">' in page and f'href="#{section}"' in page
    kinds = {re.sub(r"-\d+$", "", c) for c in result["charts"]}
    assert kinds == {
        "funnel", "acceptance-source", "acceptance-teacher", "acceptance-verifier", "lengths",
        "reasoning",
        "drops", "confusion", "outcome", "clusters", "contamination", "costs", "mix",
    }  # fmt: skip
    assert page.count("<svg") == len(result["charts"]) == len(set(result["charts"]))
    # nothing to fetch: no script, no external reference (SVG namespaces are names, not loads)
    assert "<script" not in page.lower()
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page)
    assert refs and all(r.startswith("#") for r in refs), refs
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # clip paths of many charts never collide
    assert "No difficulty recorded" in page  # file sources without source.difficulty_field


def test_model_text_is_escaped(hostile_run, tmp_path):
    build_report([hostile_run], tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # shown, as text
    assert "No decontamination hits" in page and "No mix among these inputs" in page


def test_procedural_problems_are_grouped_by_difficulty(tmp_path):
    keys = {
        "teacher.backend": "solver", "teacher.model": "solver", "source.limit": "6",
        "dedup.traces.near": "false", "dedup.problems.near": "false",
    }  # fmt: skip
    recipe = load_recipe("math-cot", [f"{k}={v}" for k, v in keys.items()])
    run_recipe(recipe, tmp_path / "run")
    groups = {r["group"] for r in report_data([tmp_path / "run"])["acceptance"]["difficulty"]}
    assert groups == {"num_digits:[1,1],num_terms:[2,2]", "num_digits:[1,1],num_terms:[2,3]"}


def test_labels_with_dollars_and_markup_are_text(tmp_path):
    from factory.report_charts import bars

    svg = bars("t", ["price $x^$", "$5 to $10", "<b>&"], [1, 2, 3], title="t", xlabel="x")
    assert "price $x^$" in svg and "$5 to $10" in svg  # not read as TeX (nor an error)
    assert "&lt;b&gt;&amp;" in svg and "<b>" not in svg


def test_the_command(inputs, tmp_path):  # noqa: F811
    math, _, _ = inputs
    out = tmp_path / "sub" / "report.html"
    r = factory("report", str(math), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert re.match(r"report: .*report\.html \(\d+ kB, \d+ charts, [\d.]+ s\)", r.stdout)
    assert out.read_text().startswith("<!DOCTYPE html>")
    bad = factory("report", str(tmp_path / "missing"), "--out", str(out))
    assert bad.returncode == 2 and "no such folder" in bad.stderr
    with pytest.raises(FactoryError, match="no path matches this glob"):
        build_report([str(tmp_path / "nothing-*")], out)
    folder = factory("report", str(math), "--out", str(tmp_path))
    assert folder.returncode == 2 and "is a folder; name the HTML file" in folder.stderr
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:  # root ignores permissions: only check where they bind
        if not os.access(tmp_path / "ro", os.W_OK):
            denied = factory("report", str(math), "--out", str(tmp_path / "ro" / "r.html"))
            assert denied.returncode == 2 and "cannot write it" in denied.stderr
    finally:
        (tmp_path / "ro").chmod(0o700)
    before = out.read_text()
    with pytest.raises(FactoryError):
        build_report([str(tmp_path / "missing")], out)
    assert out.read_text() == before  # a failed report leaves the last one whole


def test_difficulty_levels_read_in_order(shared_data, tmp_path):
    """MATH-500 levels through source.difficulty_field, grouped in level order."""
    keys = {
        "source.kind": "file", "source.path": str(shared_data / "math500/test.jsonl"),
        "source.question_field": "problem", "source.difficulty_field": "level",
        "source.limit": "40", "teacher.model": "canned", "dedup.traces.near": "false",
        "dedup.problems.near": "false", "decontaminate.enabled": "false",
    }  # fmt: skip
    recipe = load_recipe("math-cot", [f"{k}={v}" for k, v in keys.items()])
    run_recipe(recipe, tmp_path / "run", teacher=CannedTeacher())
    rows = report_data([tmp_path / "run"])["acceptance"]["difficulty"]
    assert [r["group"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert sum(r["samples"] for r in rows) == 80
