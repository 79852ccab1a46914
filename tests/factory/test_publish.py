"""`factory publish`: runs → a Hugging Face dataset folder (E1/E2 of RELIABILITY.md), atomic
republish, refusal of folders that are not ours, SFT-valid messages, lineage on the card."""

from __future__ import annotations

import os
import shutil
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import factory
from factory import publish as publish_mod
from factory.pipeline import run_recipe
from factory.publish import (
    PublishError,
    check_published,
    publish,
    push_to_hub,
    read_card,
    sft_messages,
)
from factory.recipe import load_recipe
from factory.storage.rundir import current_version
from tests.helpers import factory as factory_cli

THINK = "<think>\nadd them\n</think>\nThe answer is \\boxed{2}."
SYSTEM = {"role": "system", "content": "Think first."}
USER = {"role": "user", "content": "1 + 1?"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished reverify runs (8 kept traces each, no model needed)."""
    base = tmp_path_factory.mktemp("runs")
    out = []
    for name in ("a", "b"):
        run_recipe(load_recipe("reverify", ["dedup.workers=0"]), base / name)
        out.append(base / name)
    return out


def _copy_run(run, dest, rewrite):
    """A copy of `run` whose kept-trace table is `rewrite(table)`."""
    shutil.copytree(run, dest, symlinks=True)
    (shard,) = (current_version(dest) / "data").glob("*.parquet")
    pq.write_table(rewrite(pq.read_table(shard)), shard)
    return dest


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run_ids(folder):
    return [
        r[0]
        for r in duckdb.sql(
            f"SELECT run_id FROM read_parquet('{folder}/data/*.parquet', filename=true) "
            "ORDER BY filename, file_row_number"
        ).fetchall()
    ]


@pytest.mark.parametrize(
    ("messages", "completion", "reason"),
    [
        ([SYSTEM, USER], THINK, None),  # a generated run: prompt + completion
        ([USER], THINK, None),
        ([SYSTEM, USER, {"role": "assistant", "content": THINK}], "ignored", None),
        ([SYSTEM, USER], None, "no_completion"),
        ([SYSTEM, USER], "The answer is 2.", "no_think_block"),
        ([SYSTEM, USER], THINK + "<think>again</think>", "several_think_blocks"),
        ([SYSTEM, USER], "</think> x <think>", "unclosed_think"),
        ([SYSTEM, USER], "<think>never closed", "unclosed_think"),
        ([USER, USER], THINK, "bad_roles"),
        ([SYSTEM], THINK, "bad_roles"),
        ([], THINK, "bad_roles"),
        ([USER, SYSTEM], THINK, "bad_roles"),
    ],
)
def test_sft_messages(messages, completion, reason):
    turns, why = sft_messages(messages, completion)
    assert why == reason
    if reason is None:
        assert turns[-1]["role"] == "assistant" and turns[-1]["content"].count("<think>") == 1
        assert turns[: len(messages)] == messages or messages[-1]["role"] == "assistant"
    else:
        assert turns is None


def test_publish_one_run(runs, tmp_path):
    folder = tmp_path / "ds"
    done = publish([runs[0]], folder)
    assert (done.rows, done.shards, done.skipped) == (8, 1, {})
    assert _files(folder) == ["README.md", "data", "data/train-00000-of-00001.parquet"]
    assert sorted(os.listdir(tmp_path)) == ["ds"]  # no temp sibling left behind
    assert check_published(folder) == 8

    meta, body = read_card(folder)
    assert meta["configs"] == [
        {
            "config_name": "default",
            "data_files": [{"split": "train", "path": "data/train-*.parquet"}],
        }
    ]
    assert meta["license"] == "other" and "factory" in meta["tags"]
    manifest = (current_version(runs[0]) / "manifest.json").read_text()
    run_id = duckdb.sql(f"SELECT DISTINCT run_id FROM read_parquet('{folder}/data/*')").fetchall()[
        0
    ]
    assert run_id[0] in manifest and run_id[0] in body
    for fact in ("reverify", "problems 13 → generated 13", "skipped: 0", str(runs[0])):
        assert fact in body
    assert f"factory_version: {factory.__version__}" in body
    assert "label vs math: agreement 0.9167 over 12" in body  # factory stats' agreement
    assert "gsm8k_test (1319)" in body and "MinHash threshold 0.9" in body

    rows = duckdb.sql(f"SELECT messages, completion FROM read_parquet('{folder}/data/*')")
    for messages, _ in rows.fetchall():
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert messages[-1]["content"].count("<think>") == 1


def test_publish_two_runs_in_order_across_shards(runs, tmp_path):
    folder = tmp_path / "ds"
    done = publish([runs[1], runs[0]], folder, rows_per_shard=5)
    assert (done.rows, done.shards) == (16, 4)
    assert _files(folder / "data") == [f"train-{i:05d}-of-00004.parquet" for i in range(4)]
    assert check_published(folder) == 16
    ids = _run_ids(folder)
    run_b, run_a = ids[0], ids[-1]
    assert run_a != run_b and ids == [run_b] * 8 + [run_a] * 8
    _, body = read_card(folder)
    assert body.count("published 8 of 8 kept") == 2 and "Rows published: 16" in body
    assert body.index(run_b) < body.index(run_a)


def test_prompt_only_messages_get_the_completion_and_invalid_rows_are_counted(runs, tmp_path):
    def as_generated(table):  # a teacher run stores the prompt; one answer has no think block
        prompts = [m[:2] for m in table.column("messages").to_pylist()]
        completions = table.column("completion").to_pylist()
        completions[0] = "The answer is 42."
        table = table.set_column(
            table.schema.get_field_index("completion"), "completion", pa.array(completions)
        )
        i = table.schema.get_field_index("messages")
        return table.set_column(i, table.schema.field(i), pa.array(prompts, table.schema[i].type))

    run = _copy_run(runs[0], tmp_path / "gen", as_generated)
    folder = tmp_path / "ds"
    done = publish([run], folder)
    assert done.skipped == {"no_think_block": 1} and done.rows == 7
    assert check_published(folder) == 7
    _, body = read_card(folder)
    assert "skipped: 1 (no_think_block 1)" in body and "published 7 of 8 kept" in body
    for messages, completion in duckdb.sql(
        f"SELECT messages, completion FROM read_parquet('{folder}/data/*')"
    ).fetchall():
        assert messages[-1] == {"role": "assistant", "content": completion}


def test_card_token_statistics_and_teacher_models(runs, tmp_path):
    def with_tokens(table):
        n = len(table)
        table = table.set_column(
            table.schema.get_field_index("completion_tokens"),
            table.schema.field("completion_tokens"),
            pa.array([10 * (i + 1) for i in range(n)], pa.int32()),
        )
        i = table.schema.get_field_index("teacher_model")
        return table.set_column(i, table.schema.field(i), pa.array(["tiny-teacher"] * n))

    run = _copy_run(runs[0], tmp_path / "tok", with_tokens)
    publish([run], tmp_path / "ds")
    _, body = read_card(tmp_path / "ds")
    assert (
        "| count | mean | p50 | p90 | max |\n|---|---|---|---|---|\n| 8 | 45.0 | 40 | 80 | 80 |"
        in body
    )
    assert "teacher_models:\n- tiny-teacher" in body


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_republish_swaps_atomically(runs, tmp_path, monkeypatch, exchange):
    if not exchange:  # systems without RENAME_EXCHANGE
        monkeypatch.setattr(publish_mod, "_exchange", lambda a, b: False)
    folder = tmp_path / "ds"
    publish([runs[0]], folder)
    seen = []
    real_swap = publish_mod._swap_in

    def swap(tmp, target):  # just before the swap the old version is whole and readable
        seen.append(check_published(target))
        assert check_published(tmp) == 16  # and the new one is complete beside it
        real_swap(tmp, target)
        seen.append(check_published(target))

    monkeypatch.setattr(publish_mod, "_swap_in", swap)
    publish([runs[0], runs[1]], folder, rows_per_shard=10)
    assert seen == [8, 16]
    assert check_published(folder) == 16
    assert sorted(os.listdir(tmp_path)) == ["ds"]  # the old version is gone, no temp left


def test_a_crashed_build_leaves_the_old_version(runs, tmp_path, monkeypatch):
    folder = tmp_path / "ds"
    publish([runs[0]], folder)

    def crash(tmp, target):
        raise OSError("disk full")

    monkeypatch.setattr(publish_mod, "_swap_in", crash)
    with pytest.raises(OSError, match="disk full"):
        publish(runs, folder)
    assert check_published(folder) == 8 and sorted(os.listdir(tmp_path)) == ["ds"]


def test_a_folder_that_is_not_ours_is_refused(runs, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(PublishError, match="not written by `factory publish`.*remove"):
        publish([runs[0]], folder)
    assert _files(folder) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert publish([runs[0]], empty).rows == 8 and check_published(empty) == 8


def test_incompatible_schemas_name_the_columns(runs, tmp_path):
    def drop_answer(table):
        return table.drop_columns(["answer"]).append_column("extra", pa.array(["x"] * len(table)))

    other = _copy_run(runs[1], tmp_path / "other", drop_answer)
    with pytest.raises(
        PublishError, match=r"missing columns \['answer'\]; extra columns \['extra'\]"
    ):
        publish([runs[0], other], tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_check_published_catches_broken_folders(runs, tmp_path):
    folder = tmp_path / "ds"
    publish([runs[0]], folder)
    (folder / "data" / ".train.tmp").write_bytes(b"")
    with pytest.raises(PublishError, match="must hold only train"):
        check_published(folder)
    (folder / "data" / ".train.tmp").unlink()
    card = folder / "README.md"
    card.write_text(card.read_text().replace("Rows published: 8", "Rows published: 9"))
    with pytest.raises(PublishError, match="datasets 8, DuckDB 8, card 9"):
        check_published(folder)


def test_push_to_hub_without_huggingface_hub(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if missing
    with pytest.raises(PublishError, match="pip install huggingface_hub"):
        push_to_hub(tmp_path, "me/data")


def test_cli(runs, tmp_path):
    folder = tmp_path / "ds"
    done = factory_cli("publish", str(runs[0]), str(runs[1]), "--to", str(folder))
    assert done.returncode == 0, done.stderr
    assert f"published: 16 rows in 1 shard(s) to {folder}" in done.stdout
    assert check_published(folder) == 16

    again = factory_cli("publish", str(runs[0]), "--to", str(folder))
    assert again.returncode == 0 and check_published(folder) == 8

    not_ours = factory_cli("publish", str(runs[0]), "--to", str(runs[1]))
    assert not_ours.returncode == 2 and "not written by `factory publish`" in not_ours.stderr
    not_a_run = factory_cli("publish", str(tmp_path / "nope"), "--to", str(tmp_path / "x"))
    assert not_a_run.returncode == 2 and "not a finished factory run" in not_a_run.stderr
    assert not (tmp_path / "x").exists()
