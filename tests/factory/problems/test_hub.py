"""The `hub` source goes through `datasets.load_dataset(name, ...)`; a local dataset folder is
a real `datasets` name that works offline, so the same code path is exercised here."""

from __future__ import annotations

import pytest

from factory.errors import ProblemSourceError
from factory.problems import check_source, load_problems
from factory.recipe import SourceConfig


@pytest.fixture
def folder(tmp_path, shared_data):
    lines = (shared_data / "gsm8k" / "test.jsonl").read_text().splitlines()[:3]
    (tmp_path / "test.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_loads_through_datasets(folder):
    cfg = SourceConfig(kind="hub", name=str(folder), split="test", label="gsm8k-test", limit=2)
    assert check_source(cfg) == 2
    assert [(r.problem_id, r.gold) for r in load_problems(cfg)] == [
        ("gsm8k-test:0", "18"),
        ("gsm8k-test:1", "3"),
    ]


def test_errors_name_the_dataset_and_the_fix(folder, tmp_path):
    with pytest.raises(ProblemSourceError, match=r"Unknown split .*source.kind=file"):
        check_source(SourceConfig(kind="hub", name=str(folder), split="train", limit=1))
    with pytest.raises(
        ProblemSourceError, match=r"column 'q' not found \(columns: question, answer\)"
    ):
        check_source(
            SourceConfig(kind="hub", name=str(folder), split="test", question_field="q", limit=1)
        )
    with pytest.raises(ProblemSourceError, match="could not load dataset"):
        check_source(SourceConfig(kind="hub", name=str(tmp_path / "missing"), limit=1))
