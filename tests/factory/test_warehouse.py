"""The warehouse (factory/warehouse.py): every view's columns and exact counts over a math run
with planted duplicates, a planted GSM8K leak and a price, a re-verify run with two verifiers
and a published folder; globs and several inputs at once; a `--db` file a fresh DuckDB reads;
bad paths refused by name; the README's example questions and their answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb
import pytest

from factory.errors import FactoryError
from factory.pipeline import run_recipe
from factory.publish import publish
from factory.recipe import load_recipe
from factory.teachers.base import Sample
from factory.warehouse import VIEWS, WarehouseError, open_warehouse
from tests.helpers import REPO, factory, file_overrides, problems_file

COLUMNS = {
    "runs": [
        "input", "kind", "run_id", "recipe", "recipe_fingerprint", "generation_fingerprint",
        "factory_version", "teacher_backend", "teacher_model", "started_at", "finished_at",
        "seconds", "problems", "generated", "parsed", "verified", "deduped", "kept", "funnel",
        "rows_traces", "rows_rejects", "rows_problems", "samples", "prompt_tokens",
        "completion_tokens", "cost_usd", "cost_this_run_usd", "cost_per_kept_usd", "budget_usd",
    ],
    "traces": [
        "id", "problem_id", "source", "kind", "problem", "gold", "pseudo_label", "sample_index",
        "messages", "completion", "reasoning", "answer", "verdict", "verdicts", "teacher_model",
        "temperature", "top_p", "prompt_tokens", "completion_tokens", "finish_reason",
        "generation_fingerprint", "dedup_cluster", "meta", "recipe", "recipe_fingerprint",
        "run_id", "input",
    ],
    "problems": ["problem_id", "source", "problem", "gold", "meta", "run_id", "input"],
    "verdicts": [
        "input", "run_id", "id", "problem_id", "source", "teacher_model", "kept", "stage",
        "drop_reason", "verifier", "verdict", "reason", "position", "is_primary",
    ],
    "clusters": [
        "input", "run_id", "level", "cluster", "member", "is_survivor", "outcome", "kept",
        "problem_id", "source", "size",
    ],
    "contamination": [
        "input", "run_id", "id", "problem_id", "source", "level", "benchmark", "item", "ngram",
        "field", "problem", "drop_reason",
    ],
    "costs": [
        "input", "run_id", "teacher_model", "samples", "prompt_tokens", "completion_tokens",
        "kept", "cost_usd", "cost_per_kept_usd",
    ],
}  # fmt: skip
COLUMNS["rejects"] = [*COLUMNS["traces"][:-1], "stage", "drop_reason", "input"]


def _readme_questions() -> dict[str, str]:
    """The README's example questions (section "Warehouse"): its ```sql block, one query per
    paragraph, keyed by the `-- question` line above it (the answers below are checked here)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text[text.index("Example questions") :].split("```sql\n", 1)[1].split("```", 1)[0]
    questions = {}
    for paragraph in block.strip().split("\n\n"):
        lines = paragraph.splitlines()
        sql = "\n".join(line for line in lines[1:] if not line.lstrip().startswith("--"))
        questions[lines[0].removeprefix("-- ")] = sql.rstrip(";\n ")
    return questions


README = _readme_questions()
ACCEPTANCE_BY_SOURCE = README["acceptance by source"]
VERIFIER_DISAGREEMENT = README["verifier disagreement (pass vs not pass)"]
LONGEST_ACCEPTED = README["longest accepted reasoning"]
CONTAMINATION_BY_BENCHMARK = README["contamination by benchmark"]
COST_PER_KEPT_BY_TEACHER = README["cost per accepted trace by teacher"]


class DuplicatingTeacher:
    """ "Calculate 0 + b.": for odd b both samples are the same right answer (an exact
    duplicate); for even b sample 0 is right and sample 1 is wrong."""

    model_name = "fake"

    def generate(self, requests, cfg):
        for request in requests:
            a, b = (
                int(x) for x in re.findall(r"(\d+) \+ (\d+)", request.messages[-1]["content"])[0]
            )
            i = request.sample_index
            if b % 2:
                thought, answer = f"Adding {a} and {b} gives {a + b}.", a + b
            else:
                thought, answer = f"Sample {i}: {a} plus {b} is {a + b + i}.", a + b + i
            text = f"<think>\n{thought}\n</think>\n\n\\boxed{{{answer}}}"
            yield request, Sample(text, 10, 20, "stop")

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data):
    """(math run, re-verify run, published folder of the math run)."""
    tmp = tmp_path_factory.mktemp("warehouse")
    (tmp / "in").mkdir()
    problems = problems_file(tmp / "in" / "problems.jsonl", 6)  # Calculate 0 + 1. … 0 + 6.
    leak = json.loads((shared_data / "gsm8k/test.jsonl").read_text().splitlines()[0])["question"]
    with problems.open("a") as fh:
        fh.write(json.dumps({"id": "leak", "question": leak, "answer": "18"}) + "\n")
    gsm8k = f"[{{name: gsm8k_test, path: {shared_data}/gsm8k/test.jsonl, text_field: question}}]"
    keys = {
        "teacher.n": "2",
        "dedup.problems.exact": "false",
        "dedup.problems.near": "false",
        "dedup.traces.exact": "true",
        "dedup.traces.near": "false",
        "decontaminate.enabled": "true",
        "decontaminate.benchmarks": gsm8k,
        "prices": "{fake: {prompt: 1000000, completion: 2000000}}",  # $1, $2 per token
    }
    overrides = file_overrides(problems, **keys)
    recipe = load_recipe("math-cot", overrides)
    run_recipe(recipe, tmp / "math", teacher=DuplicatingTeacher())
    reverify = load_recipe(
        "reverify",
        [f"source.path={REPO / 'data/sample-traces.jsonl'}", "decontaminate.enabled=false"],
    )
    run_recipe(reverify, tmp / "reverify")
    publish([tmp / "math"], tmp / "published")
    return tmp / "math", tmp / "reverify", tmp / "published"


def _all(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def test_every_view_has_its_documented_columns(inputs):
    con = open_warehouse(list(inputs))
    for view in VIEWS:
        assert [d[0] for d in con.execute(f"SELECT * FROM {view} LIMIT 0").description] == (
            COLUMNS[view]
        ), view


def test_counts_of_every_view_over_one_run(inputs):
    math, _, _ = inputs
    con = open_warehouse([math])
    # 7 problems (one a GSM8K test question: never generated) → 12 samples → 9 verified →
    # 6 after dedup (3 exact duplicates) → 6 kept
    ((run_id, kind, funnel, kept, samples, cost, per_kept),) = _all(
        con, "SELECT run_id, kind, funnel, kept, samples, cost_usd, cost_per_kept_usd FROM runs"
    )
    assert kind == "run" and (kept, samples, cost, per_kept) == (6, 12, 600.0, 100.0)
    assert funnel == {
        "problems": 7, "generated": 12, "parsed": 12, "verified": 9, "deduped": 6, "kept": 6,
    }  # fmt: skip
    counts = {v: _all(con, f"SELECT count(*) FROM {v}")[0][0] for v in VIEWS}
    assert counts == {
        "runs": 1, "traces": 6, "rejects": 7, "problems": 7, "verdicts": 12, "clusters": 9,
        "contamination": 1, "costs": 1,
    }  # fmt: skip
    assert _all(con, "SELECT DISTINCT input, run_id FROM traces") == [(str(math), run_id)]
    assert _all(con, "SELECT DISTINCT run_id FROM problems") == [(run_id,)]
    assert _all(con, "SELECT drop_reason, count(*) FROM rejects GROUP BY ALL ORDER BY ALL") == [
        ("contaminated:gsm8k_test", 1),
        ("duplicate_exact", 3),
        ("wrong_answer", 3),
    ]
    # verdicts: one math verdict per judged row, the primary; the leak was never judged
    assert _all(con, "SELECT verifier, is_primary, kept, verdict, count(*) FROM verdicts "
                "GROUP BY ALL ORDER BY ALL") == [
        ("math", True, False, "fail", 3),
        ("math", True, False, "pass", 3),
        ("math", True, True, "pass", 6),
    ]  # fmt: skip
    # clusters: 3 of size 2 (survivor kept + duplicate), 3 single kept traces
    assert _all(con, "SELECT size, outcome, is_survivor, kept, count(*) FROM clusters "
                "GROUP BY ALL ORDER BY ALL") == [
        (1, "survivor", True, True, 3),
        (2, "duplicate_exact", False, False, 3),
        (2, "survivor", True, True, 3),
    ]  # fmt: skip
    (dup,) = _all(con, "SELECT cluster, member FROM clusters WHERE outcome = 'duplicate_exact' "
                  "ORDER BY member LIMIT 1")  # fmt: skip
    assert _all(con, f"SELECT count(*) FROM traces WHERE id = '{dup[0]}'") == [(1,)]
    ((level, benchmark, item, ngram, problem_id),) = _all(
        con, "SELECT level, benchmark, item, ngram, problem_id FROM contamination"
    )
    assert (level, benchmark, item, problem_id) == ("problems", "gsm8k_test", "0", "problems:leak")
    assert len(ngram.split()) == 8
    assert _all(con, "SELECT teacher_model, samples, prompt_tokens, completion_tokens, kept, "
                "cost_usd, cost_per_kept_usd FROM costs") == [
        ("fake", 12, 120, 240, 6, 600.0, 100.0)
    ]  # fmt: skip


def test_several_inputs_and_globs(inputs):
    math, reverify, published = inputs
    root = math.parent
    con = open_warehouse([str(root / "[mpr]*"), math])  # the glob names math too: read once
    assert _all(con, "SELECT kind, recipe, rows_traces FROM runs ORDER BY input") == [
        ("run", "math-cot", 6),
        ("published", "math-cot", 6),
        ("run", "reverify", 8),
    ]
    assert _all(con, "SELECT count(*), count(completion) FROM traces") == [(20, 20)]
    by_input = _all(con, "SELECT input, count(*) FROM traces GROUP BY ALL ORDER BY input")
    assert by_input == [(str(math), 6), (str(published), 6), (str(reverify), 8)]
    # the published rows are the math run's, read back under the run's column names
    assert _all(
        con,
        f"SELECT count(*) FROM traces AS p JOIN traces AS m USING (id) "
        f"WHERE p.input = '{published}' AND m.input = '{math}' AND p.completion = m.completion",
    ) == [(6,)]
    assert _all(con, "SELECT count(*) FROM rejects") == [(7 + 5,)]
    assert _all(con, "SELECT count(*) FROM problems") == [(7 + 13,)]
    # a published folder alone still has every view (rejects and problems empty)
    alone = open_warehouse([published])
    assert [d[0] for d in alone.execute("SELECT * FROM rejects").description] == COLUMNS["rejects"]
    assert [_all(alone, f"SELECT count(*) FROM {v}")[0][0] for v in VIEWS] == [
        1,
        6,
        0,
        0,
        6,
        6,
        0,
        1,
    ]


def test_readme_examples_answer_on_the_test_runs(inputs):
    math, reverify, _ = inputs
    con = open_warehouse([math, reverify])
    assert _all(con, ACCEPTANCE_BY_SOURCE) == [
        ("problems", 12, 6, 0.5),
        ("sample-traces", 13, 8, 0.615),
    ]
    assert _all(con, VERIFIER_DISAGREEMENT) == [("label", "math", 12, 1)]
    longest = _all(con, LONGEST_ACCEPTED)
    assert [r[2] for r in longest] == sorted((r[2] for r in longest), reverse=True)
    assert longest == _LONGEST
    assert _all(con, CONTAMINATION_BY_BENCHMARK) == [("gsm8k_test", "problems", 1, 1)]
    assert _all(con, COST_PER_KEPT_BY_TEACHER) == _COSTS


_LONGEST = [
    ("reverify", "sample-traces:t7", 32),
    ("reverify", "sample-traces:t3", 27),
    ("reverify", "sample-traces:t4", 25),
]
_COSTS = [("fake", 12, 6, 600.0, 100.0), (None, 13, 8, 0.0, 0.0)]  # re-verify asks no teacher


def test_db_file_is_a_catalog_for_other_tools(inputs, tmp_path):
    math, reverify, _ = inputs
    db = tmp_path / "catalog.duckdb"
    done = factory("query", str(math), str(reverify), "--db", str(db))
    assert done.returncode == 0, done.stderr
    assert f"catalog: {db}" in done.stdout and "2 run(s)" in done.stdout
    con = duckdb.connect(str(db), read_only=True)  # a fresh process would do the same
    names = {r[0] for r in _all(con, "SELECT view_name FROM duckdb_views() WHERE NOT internal")}
    assert names == set(VIEWS)
    assert _all(con, "SELECT count(*) FROM traces") == [(14,)]
    assert _all(con, VERIFIER_DISAGREEMENT) == [("label", "math", 12, 1)]
    con.close()
    again = factory(
        "query", str(math), "--db", str(db), "SELECT count(*) AS n FROM runs", "-f", "csv"
    )
    assert again.returncode == 0 and again.stdout.splitlines() == ["n", "1"]  # views replaced


def test_query_command_takes_several_paths_then_the_sql(inputs):
    math, reverify, published = inputs
    out = factory("query", str(math), f"{reverify.parent}/rev*", "SELECT count(*) AS n FROM traces",
                  "--format", "json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"n": 14}]
    one = factory("query", str(published), "SELECT count(*) AS n FROM traces", "-f", "csv")
    assert one.stdout.splitlines() == ["n", "6"]
    no_sql = factory("query", str(math))
    assert no_sql.returncode == 2 and "then the SQL" in no_sql.stderr


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "no such folder"),
        (lambda p: p, "not a finished factory run directory (no manifest.json) nor a folder"),
        (lambda p: (p / ".factory-run").touch() or p, "holds no finished run yet"),
        (lambda p: Path(str(p / "nothing-*")), "no path matches this glob"),
        (lambda p: (p / "f.txt").write_text("x") and p / "f.txt", "not a folder"),
    ],
)
def test_bad_paths_are_refused_by_name(tmp_path, inputs, make, message):
    bad = make(tmp_path)
    with pytest.raises(WarehouseError, match=re.escape(message)) as info:
        open_warehouse([inputs[0], bad])
    assert str(bad) in str(info.value) and isinstance(info.value, FactoryError)


def test_a_missing_shard_is_named(inputs, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(inputs[0], copy, symlinks=True)
    (shard,) = (copy / "rejects").iterdir()
    shard.unlink()
    with pytest.raises(WarehouseError, match="shard listed in the manifest is missing"):
        open_warehouse([copy])
