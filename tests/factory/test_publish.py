"""`factory publish`: runs → a Hugging Face dataset folder (E1/E2 of RELIABILITY.md), atomic
republish, refusal of folders that are not ours, SFT-valid messages (knowledge rows get an
empty think block), lineage, kinds, mix and selection reports and the length audit (E4) on the
card. TRL's own preparation of a published folder (E3) is tests/factory/test_publish_trl.py."""

from __future__ import annotations

import json
import os
import shutil
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import factory
from factory import publish as publish_mod
from factory.card import length_audit
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


def _copy_run(run, dest, rewrite, manifest=None):
    """A copy of `run` whose kept-trace table is `rewrite(table)` and whose manifest is updated
    with `manifest`."""
    shutil.copytree(run, dest, symlinks=True)
    (shard,) = (current_version(dest) / "data").glob("*.parquet")
    pq.write_table(rewrite(pq.read_table(shard)), shard)
    if manifest:
        path = current_version(dest) / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **manifest}))
    return dest


def _set(table, **columns):
    """`table` with the named columns replaced by these values (the columns' own types)."""
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        field = table.schema.field(i)
        table = table.set_column(i, field, pa.array(values, field.type))
    return table


def _prompts(table):
    """The stored messages as a teacher run stores them: system + user, no assistant turn."""
    return [m[:2] for m in table.column("messages").to_pylist()]


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


@pytest.mark.parametrize(
    ("kind", "completion", "content", "reason"),
    [
        # a direct answer gets the empty think block the knowledge recipe's parse step writes
        ("knowledge", "Paris.", "<think>\n\n</think>\n\nParis.", None),
        ("knowledge", "\nParis.", "<think>\n\n</think>\n\nParis.", None),
        ("knowledge", "<think>\n\n</think>\n\nParis.", "<think>\n\n</think>\n\nParis.", None),
        ("knowledge", "Paris.</think>", None, "unclosed_think"),  # a broken block is not fixed
        ("journey", THINK, THINK, None),
        ("journey", "It is 3. No, wait: 2.", None, "no_think_block"),  # only knowledge is wrapped
        ("reasoning", "The answer is 2.", None, "no_think_block"),
        (None, "The answer is 2.", None, "no_think_block"),
    ],
)
def test_sft_messages_by_kind(kind, completion, content, reason):
    turns, why = sft_messages([SYSTEM, USER], completion, kind)
    assert why == reason
    assert (turns[-1] if turns else None) == (
        {"role": "assistant", "content": content} if content else None
    )


def test_knowledge_in_a_stored_conversation_is_wrapped_too():
    turns, why = sft_messages([USER, {"role": "assistant", "content": "Paris."}], None, "knowledge")
    assert why is None and turns[-1]["content"] == "<think>\n\n</think>\n\nParis."


@pytest.mark.parametrize(
    ("tokens", "over"),
    [
        ([], [0, 0, 0, 0, 0]),
        ([1024, 2048, 4096, 8192, 32768], [4, 3, 2, 1, 0]),  # at the limit is not over it
        ([1025, 2049, 4097, 8193, 32769], [5, 4, 3, 2, 1]),
        ([10, 100_000], [1, 1, 1, 1, 1]),
    ],
)
def test_length_audit(tokens, over):
    assert length_audit(tokens) == dict(zip((1024, 2048, 4096, 8192, 32768), over, strict=True))


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

    rows = duckdb.sql(f"SELECT messages, raw_completion FROM read_parquet('{folder}/data/*')")
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
        f"SELECT messages, raw_completion FROM read_parquet('{folder}/data/*')"
    ).fetchall():
        assert messages[-1] == {"role": "assistant", "content": completion}


def test_kinds_knowledge_and_journey_rows_on_the_card(runs, tmp_path):
    kinds = ["knowledge", "knowledge", "journey", "journey", *["reasoning"] * 4]

    def as_kinds(table):
        completions = table.column("completion").to_pylist()
        completions[0] = "Paris is the capital of France."  # knowledge: no think block
        completions[1] = "<think>\n\n</think>\n\nWater boils at 100 °C."  # as parsed
        completions[3] = "It is 3. No, wait: it is 2."  # a journey without a think block
        completions[4] = "The answer is 2."  # and a reasoning trace without one
        return _set(
            table,
            kind=kinds,
            pseudo_label=[False, True, False, False, True, True, False, False],
            completion=completions,
            messages=_prompts(table),
        )

    run = _copy_run(runs[0], tmp_path / "kinds", as_kinds)
    folder = tmp_path / "ds"
    done = publish([run], folder)
    assert done.rows == 6 and done.skipped == {"no_think_block": 2}
    assert check_published(folder) == 6  # incl. rows per kind: data == card
    _, body = read_card(folder)
    assert (
        "## Kinds\n\n| kind | rows | pseudo-labelled |\n|---|---|---|\n"
        "| journey | 1 | 0 |\n| knowledge | 2 | 1 |\n| reasoning | 3 | 1 |\n" in body
    )
    rows = duckdb.sql(
        f"SELECT kind, messages[-1].content, raw_completion FROM read_parquet('{folder}/data/*') "
        "ORDER BY file_row_number"
    ).fetchall()
    assert [r[0] for r in rows] == ["knowledge", "knowledge", "journey", *["reasoning"] * 3]
    assert rows[0][1:] == (
        "<think>\n\n</think>\n\nParis is the capital of France.",
        "Paris is the capital of France.",  # the raw output stays as the teacher wrote it
    )
    assert rows[1][1] == rows[1][2] == "<think>\n\n</think>\n\nWater boils at 100 °C."
    assert rows[2][1].count("<think>") == 1  # the journey row with its think block

    card = folder / "README.md"
    card.write_text(card.read_text().replace("| knowledge | 2 | 1 |", "| knowledge | 2 | 0 |"))
    with pytest.raises(PublishError, match="rows per kind differ"):
        check_published(folder)


def test_length_audit_on_the_card(runs, tmp_path):
    tokens = [100, 1024, 1025, 2049, 5000, 9000, 40000, None]  # the last one is estimated

    def with_tokens(table):
        return _set(table, completion_tokens=tokens)

    run = _copy_run(runs[0], tmp_path / "long", with_tokens)
    publish([run], tmp_path / "ds")
    meta, body = read_card(tmp_path / "ds")
    assert meta["length_audit"] == {
        "tokens": "assistant turn",
        "estimated_rows": 1,
        "share_over_max_length": {1024: 0.625, 2048: 0.5, 4096: 0.375, 8192: 0.25, 32768: 0.125},
    }
    assert (
        "| max_length | rows over | share |\n|---|---|---|\n"
        "| 1024 (TRL default) | 5 | 62.50% |\n| 2048 | 4 | 50.00% |\n| 4096 | 3 | 37.50% |\n"
        "| 8192 | 2 | 25.00% |\n| 32768 | 1 | 12.50% |" in body
    )
    assert "1 of 8 row(s) estimated" in body and "defaults to 1024" in body
    assert body.index("## Completion length") < body.index("### Length audit")


def test_mix_and_selection_on_the_card(runs, tmp_path):
    mix = {
        "unit": "tokens",
        "seed": 7,
        "max_tokens": 4096,
        "buckets": [
            {
                "name": "math",
                "target": 1000,
                "achieved": 800,
                "available": 800,
                "shortfall": 200,
                "inputs": [  # as factory/mix.py reports them
                    {"input": "math-a", "path": "runs/math-a", "taken": 500, "rows": 500},
                    {"input": "math-b", "path": "runs/math-b", "taken": 300, "rows": 300},
                ],
            },
            {
                "name": "code",
                "target": 500,
                "achieved": 500,
                "available": 900,
                "shortfall": 0,
                "inputs": ["runs/code"],  # anything else as it is
            },
        ],
    }
    selection = {
        "select": {"k": 2, "pass_rate": [0.1, 0.6], "kept": 5, "note": "a|b"},
        "majority_label": {"problems": 3, "pseudo_labelled": 2},
    }
    run = _copy_run(runs[0], tmp_path / "mix", lambda t: t, {"mix": mix, "selection": selection})
    publish([runs[1], run], tmp_path / "ds")
    _, body = read_card(tmp_path / "ds")
    assert (
        "targets in tokens, seed 7, rows over 4096 tokens left out\n\n"
        "| bucket | target (tokens) | achieved | available | shortfall | inputs |\n"
        "|---|---|---|---|---|---|\n"
        "| math | 1000 | 800 | 800 | 200 | math-a (500 taken), math-b (300 taken) |\n"
        "| code | 500 | 500 | 900 | 0 | runs/code |\n" in body
    )
    assert (
        "| step | key | value |\n|---|---|---|\n| select | k | 2 |\n"
        "| select | pass_rate | [0.1,0.6] |\n| select | kept | 5 |\n| select | note | a\\|b |\n"
        "| majority_label | problems | 3 |\n| majority_label | pseudo_labelled | 2 |\n" in body
    )
    assert body.count("## Mix") == 1 and body.count("## Selection") == 1
    run_ids = json.loads((current_version(run) / "manifest.json").read_text())["run_id"]
    assert f"`{run_ids}`: targets in tokens" in body
    # runs without either report: no section at all
    publish([runs[1]], tmp_path / "plain")
    _, plain = read_card(tmp_path / "plain")
    assert "## Mix" not in plain and "## Selection" not in plain and "## Kinds" in plain


def test_check_published_refuses_a_completion_column(runs, tmp_path):
    """TRL's format detection pops one of {"completion", "messages"}: a string `completion`
    beside `messages` would make SFTTrainer's view of the rows depend on the hash seed."""
    folder = tmp_path / "ds"
    publish([runs[0]], folder)
    (shard,) = (folder / "data").glob("*.parquet")
    table = pq.read_table(shard)
    assert "completion" not in table.column_names and "raw_completion" in table.column_names
    pq.write_table(
        table.rename_columns(
            ["completion" if c == "raw_completion" else c for c in table.column_names]
        ),
        shard,
    )
    with pytest.raises(PublishError, match=r"columns \['completion'\] beside `messages`"):
        check_published(folder)


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
