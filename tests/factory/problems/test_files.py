from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from factory.errors import ProblemSourceError
from factory.problems import check_source, load_problems
from factory.recipe import SourceConfig


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_from_shared_data(shared_data):
    cfg = SourceConfig(
        kind="file", path=str(shared_data / "gsm8k" / "train.jsonl"), label="gsm8k", limit=5
    )
    assert check_source(cfg) == 5
    records = list(load_problems(cfg))
    assert len(records) == 5
    assert records[0].problem_id == "gsm8k:0" and records[0].source == "gsm8k"
    assert records[0].gold == "72"  # "#### 72" in the worked solution
    assert records[0].problem.startswith("Natalia")


def test_math500_column_mapping(shared_data):
    cfg = SourceConfig(
        kind="file",
        path=str(shared_data / "math500" / "test.jsonl"),
        question_field="problem",
        limit=3,
    )
    records = list(load_problems(cfg))
    assert [r.source for r in records] == ["test"] * 3
    assert all(r.gold for r in records)


def test_difficulty_field_goes_to_meta_and_a_wrong_one_is_named(shared_data):
    path = str(shared_data / "math500" / "test.jsonl")
    cfg = SourceConfig(
        kind="file", path=path, question_field="problem", difficulty_field="level", limit=20
    )
    records = list(load_problems(cfg))
    levels = {r.meta["difficulty"] for r in records}
    assert levels <= {"1", "2", "3", "4", "5"} and len(levels) > 1  # MATH levels, as text
    wrong = SourceConfig(kind="file", path=path, question_field="problem", difficulty_field="lvl")
    with pytest.raises(
        ProblemSourceError, match=r"column 'lvl' not found.*source.difficulty_field"
    ):
        check_source(wrong)


def test_sharding_by_rank(shared_data):
    cfg = SourceConfig(kind="file", path=str(shared_data / "gsm8k" / "test.jsonl"), limit=10)
    shards = [[r.problem_id for r in load_problems(cfg, rank, 3)] for rank in range(3)]
    assert sorted(pid for shard in shards for pid in shard) == sorted(
        r.problem_id for r in load_problems(cfg)
    )
    assert all(not set(a) & set(b) for a in shards for b in shards if a is not b)


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2", "answer": \n')
    with pytest.raises(ProblemSourceError, match=r"p.jsonl:2: not a valid JSON object"):
        check_source(SourceConfig(kind="file", path=str(path)))


def test_lone_surrogate_escape_names_the_line_and_a_proper_pair_passes(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"question": "smile \\ud83d\\ude42", "answer": "1"}\n'
        '{"question": "bad \\udcff", "answer": "2"}\n'
    )
    with pytest.raises(ProblemSourceError, match=r"p.jsonl:2: a .*escape without its pair"):
        check_source(SourceConfig(kind="file", path=str(path)))
    path.write_text('{"question": "smile \\ud83d\\ude42", "answer": "1"}\n')
    assert [r.problem for r in load_problems(SourceConfig(kind="file", path=str(path)))] == [
        "smile \U0001f642"
    ]


def test_non_object_line(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"question": "q", "answer": "1"}\n[1, 2]\n')
    with pytest.raises(ProblemSourceError, match=r":2: expected a JSON object"):
        check_source(SourceConfig(kind="file", path=str(path)))


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(ProblemSourceError, match="problem file not found"):
        check_source(SourceConfig(kind="file", path=str(tmp_path / "nope.jsonl")))
    csv = tmp_path / "p.csv"
    csv.write_text("question,answer\n")
    with pytest.raises(ProblemSourceError, match="unsupported problem file type '.csv'"):
        check_source(SourceConfig(kind="file", path=str(csv)))


def test_wrong_column_mapping_lists_columns(tmp_path):
    path = _jsonl(tmp_path / "p.jsonl", [{"problem": "1+1", "solution": "2"}])
    with pytest.raises(
        ProblemSourceError, match=r"column 'question' not found \(columns: problem, solution\)"
    ):
        check_source(SourceConfig(kind="file", path=str(path)))


def test_row_without_question_is_an_error_with_its_line(tmp_path):
    path = _jsonl(
        tmp_path / "p.jsonl", [{"question": "a", "answer": "1"}, {"question": "", "answer": "2"}]
    )
    with pytest.raises(ProblemSourceError, match=r"p.jsonl:2: 'question' is missing"):
        check_source(SourceConfig(kind="file", path=str(path)))


def test_row_without_gold_is_data_not_an_error(tmp_path):
    path = _jsonl(
        tmp_path / "p.jsonl",
        [{"question": "a", "answer": "1"}, {"question": "b", "answer": None}, {"question": "c"}],
    )
    cfg = SourceConfig(kind="file", path=str(path))
    assert check_source(cfg) == 3
    assert [r.gold for r in load_problems(cfg)] == ["1", None, None]


def test_parquet_with_id_field(tmp_path):
    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"uid": ["x", "y"], "q": ["1+1", "2+2"], "a": ["2", "#### 4"]}), path)
    cfg = SourceConfig(
        kind="file", path=str(path), question_field="q", answer_field="a", id_field="uid"
    )
    records = list(load_problems(cfg))
    assert [(r.problem_id, r.gold) for r in records] == [("p:x", "2"), ("p:y", "4")]


def test_damaged_parquet(tmp_path):
    path = tmp_path / "p.parquet"
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ProblemSourceError, match="not a readable parquet file"):
        check_source(SourceConfig(kind="file", path=str(path)))


def test_bundled_sample_file():
    repo = Path(__file__).resolve().parents[3]
    cfg = SourceConfig(
        kind="file", path=str(repo / "data" / "sample-problems.jsonl"), id_field="id"
    )
    assert check_source(cfg) == 13
    records = list(load_problems(cfg))
    assert records[0].problem_id == "sample-problems:s01" and records[0].gold == "8"
    assert records[10].gold == ["1200 - 450 = 750\n", "750"][1]
    assert records[-1].gold is None  # counted as `no_gold` by the pipeline, not an error


def test_a_relative_path_falls_back_to_the_repository_root(tmp_path, monkeypatch):
    from factory.problems import check_source
    from factory.recipe import SourceConfig

    monkeypatch.chdir(tmp_path)  # shipped recipes name data/… and ../shared/data/… paths
    cfg = SourceConfig(kind="file", path="data/knowledge-questions.jsonl", id_field="id")
    assert check_source(cfg) == 60
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "knowledge-questions.jsonl").write_text(
        '{"id": "mine", "question": "Local?", "answer": "yes"}\n'
    )
    assert check_source(cfg) == 1  # one in the working directory wins
