"""`factory publish RUN_DIR... --to FOLDER`: finished runs → one Hugging Face dataset folder.

    FOLDER/
      README.md                          dataset card (factory/card.py): YAML `configs` and
                                         length audit, recipes, funnels, kinds, mix and
                                         selection reports, token lengths, verifiers, lineage
      data/train-0000i-of-0000N.parquet  the kept traces of every run, in argument order

Nothing else is ever inside FOLDER (DuckDB and `datasets` pick up stray files in a folder).

Atomic: the new version is built complete and fsynced in a hidden sibling,
`FOLDER.parent/.FOLDER.tmp-<pid>-<random>`, then swapped in. When FOLDER already holds a
previous publish the swap is one `renameat2(RENAME_EXCHANGE)` (Linux), which exchanges the two
folders in one step, so a reader opening FOLDER sees the old or the new version, never a mix;
the old version, now in the hidden sibling, is then removed. Where the exchange is not
available (other systems, some filesystems) the old folder is renamed aside and the new one
renamed in: a reader may then briefly find no FOLDER, but still never a mix. A crash leaves at
most a hidden `.FOLDER.tmp-*` sibling, removed by the next publish. A FOLDER that exists, is
not empty and was not written by `factory publish` (its card carries `card.MARKER`) is refused.

Rows: the kept-trace columns as they are, except `messages`, which becomes a conversation TRL's
SFT trainer takes: optional system turn, then user/assistant alternating, last turn assistant
with exactly one `<think>…</think>` block. Runs store the training prompt (system + user) and
the completion separately, so the assistant turn is the completion; a stored conversation that
already ends with the assistant is kept as it is. A `knowledge` row (a direct answer) whose
assistant turn has no think block gets an empty one, `<think>\n\n</think>\n\n{answer}`, the
form the knowledge recipe's parse step writes, so every row trains the same turn shape;
`reasoning` and `journey` rows without one are not guessed at. Rows that cannot be made valid
are left out and counted on the card with their reason.

`completion` is published as `raw_completion`: TRL decides whether a row is a conversation
(`trl.data_utils.is_conversational`) by popping one key of a set of its known column names
(`prompt`, `completion`, `messages`, ...), so a string `completion` beside `messages` makes that
answer depend on the process's string-hash seed, and in about half of all processes
`SFTTrainer` would refuse the dataset (`assistant_only_loss`) or look for a `text` column.

Not covered: splits other than train, and pushing anything but the folder as written
(`push_to_hub` uploads the folder in one commit).
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import re
import secrets
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import factory
from factory.card import MARKER, CardFacts, RunSummary, render_card, stated_kinds
from factory.errors import FactoryError
from factory.record import Message, arrow_schema
from factory.storage.atomic import fsync_dir, write_bytes
from factory.storage.rundir import current_version, read_manifest
from factory.storage.shards import write_parquet

log = logging.getLogger(__name__)

CARD = "README.md"
SHARD = re.compile(r"train-(\d{5})-of-(\d{5})\.parquet")
PROVENANCE = ("id", "run_id", "recipe_fingerprint")
# columns renamed on the way out: TRL reads these names as dataset formats (see the docstring)
RENAMED = {"completion": "raw_completion"}
TRL_FORMAT_KEYS = ("prompt", "completion", "chosen", "rejected")  # beside `messages`: refused
EMPTY_THINK = "<think>\n\n</think>\n\n"  # a knowledge row's assistant turn starts with it


class PublishError(FactoryError):
    """Runs cannot be published (not finished, incompatible schemas, a target that is not
    ours), or a published folder fails its checks."""


@dataclass(slots=True)
class Published:
    folder: Path
    rows: int
    shards: int
    skipped: dict[str, int]


# --- messages -------------------------------------------------------------------------------


def conversation_problem(messages: list[Message]) -> str | None:
    """Why `messages` is not a valid SFT conversation, or None when it is."""
    roles = [m.get("role") for m in messages]
    if roles[:1] == ["system"]:
        roles = roles[1:]
    expected = ["user", "assistant"] * (len(roles) // 2)
    if not roles or roles != expected:
        return "bad_roles"
    if not all(isinstance(m.get("content"), str) for m in messages):
        return "bad_roles"
    last = messages[-1]["content"]
    opens, closes = last.count("<think>"), last.count("</think>")
    if opens == 0 and closes == 0:
        return "no_think_block"
    if opens > 1 or closes > 1:
        return "several_think_blocks"
    if opens != closes or last.index("<think>") > last.index("</think>"):
        return "unclosed_think"
    return None


def sft_messages(
    messages: list[Message] | None, completion: str | None, kind: str | None = "reasoning"
) -> tuple[list[Message] | None, str | None]:
    """The training conversation of one kept trace, or (None, reason) when there is none."""
    turns = [{"role": m["role"], "content": m["content"]} for m in messages or []]
    if not turns or turns[-1]["role"] != "assistant":
        if not completion:
            return None, "no_completion"
        turns.append({"role": "assistant", "content": completion})
    last = turns[-1]["content"]
    if (
        kind == "knowledge"
        and isinstance(last, str)
        and not ("<think>" in last or "</think>" in last)
    ):
        turns[-1]["content"] = EMPTY_THINK + last.lstrip()
    problem = conversation_problem(turns)
    return (None, problem) if problem else (turns, None)


# --- reading runs ---------------------------------------------------------------------------


def _read_run(run_dir: Path):
    """(version folder, manifest, kept-trace table) of one finished run, resolved once."""
    import pyarrow.parquet as pq

    run_dir = Path(run_dir)
    base = current_version(run_dir) or run_dir  # an older layout has no .current
    if not (base / "manifest.json").is_file():
        raise PublishError(f"{run_dir} is not a finished factory run (no manifest.json)")
    manifest = read_manifest(base)
    files = sorted((base / "data").glob("*.parquet"))
    if files:
        table = pq.ParquetDataset([str(f) for f in files]).read()
    else:
        table = arrow_schema().empty_table()
    return base, manifest, table.replace_schema_metadata(None)


def _check_schemas(run_dirs: list[Path], tables: list) -> None:
    first = tables[0].schema
    for run_dir, table in zip(run_dirs[1:], tables[1:], strict=True):
        if table.schema.equals(first):
            continue
        mine = {f.name: f.type for f in table.schema}
        ref = {f.name: f.type for f in first}
        problems = []
        if missing := [c for c in ref if c not in mine]:
            problems.append(f"missing columns {missing}")
        if extra := [c for c in mine if c not in ref]:
            problems.append(f"extra columns {extra}")
        if typed := [
            f"{c} ({mine[c]} vs {ref[c]})" for c in ref if c in mine and mine[c] != ref[c]
        ]:
            problems.append(f"different types: {', '.join(typed)}")
        if not problems:
            problems.append(f"column order differs ({list(mine)} vs {list(ref)})")
        raise PublishError(
            f"{run_dir} cannot be published with {run_dirs[0]}: {'; '.join(problems)}. "
            "Publish runs of compatible recipes (or the same factory version) together"
        )


def _kinds(table) -> list[str]:
    if "kind" in table.column_names:
        return [k or "reasoning" for k in table.column("kind").to_pylist()]
    return ["reasoning"] * table.num_rows  # runs written before the column existed


def _with_sft_messages(table, skipped: Counter):
    """The table with `messages` rewritten for SFT, invalid rows dropped (counted) and the
    columns of `RENAMED` renamed."""
    import pyarrow as pa

    keep, rows = [], []
    completions = table.column("completion").to_pylist()
    for i, (stored, completion, kind) in enumerate(
        zip(table.column("messages").to_pylist(), completions, _kinds(table), strict=True)
    ):
        turns, reason = sft_messages(stored, completion, kind)
        if reason:
            skipped[reason] += 1
            continue
        keep.append(i)
        rows.append(turns)
    kept = table.take(pa.array(keep, type=pa.int64()))
    index = kept.schema.get_field_index("messages")
    field = kept.schema.field(index)
    kept = kept.set_column(index, field, pa.array(rows, type=field.type))
    return kept.rename_columns([RENAMED.get(c, c) for c in kept.column_names])


# --- publish --------------------------------------------------------------------------------


def publish(
    run_dirs: list[Path],
    folder: Path,
    *,
    rows_per_shard: int = 100_000,
    license: str = "other",
) -> Published:
    """Publish the kept traces of `run_dirs` (in order) as the dataset folder `folder`."""
    import pyarrow as pa

    from factory.stats import run_stats

    if not run_dirs:
        raise PublishError("name at least one run directory: factory publish RUN_DIR... --to DIR")
    if rows_per_shard < 1:
        raise PublishError(f"rows_per_shard: bad value {rows_per_shard} (need >= 1)")
    run_dirs = [Path(r) for r in run_dirs]
    if len({r.resolve() for r in run_dirs}) < len(run_dirs):
        raise PublishError("a run directory is named twice: its rows would be published twice")
    folder = Path(folder)
    _check_target(folder)

    read = [_read_run(r) for r in run_dirs]
    _check_schemas(run_dirs, [t for _, _, t in read])
    skipped: Counter = Counter()
    summaries, parts = [], []
    for run_dir, (base, manifest, table) in zip(run_dirs, read, strict=True):
        part = _with_sft_messages(table, skipped)
        parts.append(part)
        summaries.append(
            RunSummary(
                run_dir=str(run_dir),
                manifest=manifest,
                rows_in=table.num_rows,
                rows_published=part.num_rows,
                verifier_agreement=run_stats(base)["verifier_agreement"],
            )
        )
    table = pa.concat_tables(parts)
    for reason, n in skipped.items():
        log.warning("not published: %d row(s), %s", n, reason)

    shards = max(1, -(-table.num_rows // rows_per_shard))
    facts = _facts(table, summaries, dict(skipped), shards, license)

    _remove_stale_temps(folder)
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        (tmp / "data").mkdir(parents=True)
        for i in range(shards):
            path = tmp / "data" / f"train-{i:05d}-of-{shards:05d}.parquet"
            shard = table.slice(i * rows_per_shard, rows_per_shard)
            write_parquet(shard, path, "zstd", crash_site="shard_mid_write")
        fsync_dir(tmp / "data")
        write_bytes(tmp / CARD, render_card(facts).encode())
        fsync_dir(tmp)
        _swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed build, or the old version after a swap
    return Published(folder, table.num_rows, shards, dict(skipped))


def _facts(table, summaries: list[RunSummary], skipped, shards: int, license: str) -> CardFacts:
    per_verifier: dict[str, Counter] = {}
    for verdicts in table.column("verdicts").to_pylist():
        for v in verdicts or []:
            per_verifier.setdefault(v["verifier"], Counter())[v["verdict"]] += 1
    models = {m for m in table.column("teacher_model").to_pylist() if m}
    models |= {s.manifest.get("teacher", {}).get("model") for s in summaries} - {None}
    recorded = table.column("completion_tokens").to_pylist()
    kinds, pseudo = Counter(), Counter()
    labels = (
        table.column("pseudo_label").to_pylist()
        if "pseudo_label" in table.column_names
        else [False] * table.num_rows
    )
    for kind, label in zip(_kinds(table), labels, strict=True):
        kinds[kind] += 1
        pseudo[kind] += bool(label)
    return CardFacts(
        rows=table.num_rows,
        shards=shards,
        runs=summaries,
        skipped=skipped,
        completion_tokens=[t for t in recorded if t is not None],
        assistant_tokens=_assistant_tokens(recorded, table.column("messages").to_pylist()),
        kinds=dict(kinds),
        pseudo_labelled=dict(pseudo),
        verdicts=dict(Counter(v or "none" for v in table.column("verdict").to_pylist())),
        per_verifier={k: dict(v) for k, v in per_verifier.items()},
        teacher_models=sorted(models),
        factory_version=factory.__version__,
        license=license,
    )


def _assistant_tokens(recorded: list[int | None], conversations: list) -> list[int]:
    """Tokens of each row's assistant turn: the teacher's `completion_tokens`, or the
    tokenizer-free estimate of filters/length.py where the run recorded none."""
    from filters.length import approx_tokens

    return [
        t if t is not None else approx_tokens(turns[-1]["content"])
        for t, turns in zip(recorded, conversations, strict=True)
    ]


# --- the target folder and the swap -----------------------------------------------------------


def _is_ours(folder: Path) -> bool:
    names = set(os.listdir(folder))
    if not names <= {CARD, "data"} or CARD not in names:
        return False
    try:
        card = (folder / CARD).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    data = folder / "data"
    shards_only = not data.exists() or all(SHARD.fullmatch(n) for n in os.listdir(data))
    return MARKER in card and shards_only


def _check_target(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise PublishError(f"--to {folder} exists and is not a folder; choose another --to")
    if folder.exists() and any(folder.iterdir()) and not _is_ours(folder):
        raise PublishError(
            f"--to {folder} is not empty and was not written by `factory publish`; "
            "choose a new or empty folder, or remove this one first"
        )


def _remove_stale_temps(folder: Path) -> None:
    """Hidden siblings left by a publish that crashed (its process is gone)."""
    for tmp in folder.parent.glob(f".{_glob_escape(folder.name)}.tmp-*"):
        pid = tmp.name.rsplit(".tmp-", 1)[1].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap_in(tmp: Path, folder: Path) -> None:
    """Make `tmp` the content of `folder`; afterwards `tmp` holds the old version (if any)."""
    parent = folder.parent
    if not folder.exists():
        os.rename(tmp, folder)
    elif not _exchange(tmp, folder):
        aside = parent / f"{tmp.name}-old"
        os.rename(folder, aside)
        os.rename(tmp, folder)
        os.rename(aside, tmp)
    fsync_dir(parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    res = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if res == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


# --- checks (E1/E2 of RELIABILITY.md) ---------------------------------------------------------


def read_card(folder: Path) -> tuple[dict[str, Any], str]:
    """(YAML front matter, body) of a published folder's card."""
    import yaml

    text = (Path(folder) / CARD).read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?\n)---\n(.*)", text, re.DOTALL)
    if not match:
        raise PublishError(f"{folder}/{CARD} has no YAML front matter")
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise PublishError(f"{folder}/{CARD}: front matter is not valid YAML ({exc})") from None
    if not isinstance(meta, dict):
        raise PublishError(f"{folder}/{CARD}: front matter is not a mapping")
    return meta, match.group(2)


def check_published(folder: Path) -> int:
    """Check a published folder (E1, E2): its files, card, row counts (datasets, DuckDB and the
    card agree), provenance, conversations, no column that TRL would read as another dataset
    format, and rows per kind as the card states them. Return the row count or raise
    PublishError."""
    import datasets
    import duckdb

    folder = Path(folder)
    names = sorted(os.listdir(folder))
    if names != [CARD, "data"]:
        raise PublishError(f"{folder} must hold exactly README.md and data/, holds {names}")
    shards = sorted(os.listdir(folder / "data"))
    matches = [SHARD.fullmatch(n) for n in shards]
    if not shards or not all(matches):
        raise PublishError(f"{folder}/data must hold only train-*-of-*.parquet, holds {shards}")
    n = len(shards)
    if [(int(m[1]), int(m[2])) for m in matches] != [(i, n) for i in range(n)]:
        raise PublishError(f"{folder}/data: shards are not train-00000..{n - 1:05d}-of-{n:05d}")

    meta, body = read_card(folder)
    wanted = [{"split": "train", "path": "data/train-*.parquet"}]
    if meta.get("configs") != [{"config_name": "default", "data_files": wanted}]:
        raise PublishError(f"{folder}/{CARD}: configs are {meta.get('configs')!r}")
    stated = re.search(r"^Rows published: (\d+)$", body, re.MULTILINE)
    if not stated:
        raise PublishError(f"{folder}/{CARD} does not state its row count")
    card_rows = int(stated[1])

    glob = str(folder / "data" / "*.parquet").replace("'", "''")
    con = duckdb.connect()
    try:
        (db_rows,) = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()
        nulls = " OR ".join(f"{c} IS NULL" for c in PROVENANCE)
        (bad,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{glob}') WHERE {nulls}"
        ).fetchone()
        conversations = con.execute(f"SELECT messages FROM read_parquet('{glob}')").fetchall()
        columns = [
            d[0] for d in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}')").fetchall()
        ]
        kinds = {}
        if "kind" in columns:
            pseudo = "count(*) FILTER (WHERE pseudo_label)" if "pseudo_label" in columns else "0"
            kinds = {
                kind: (rows, labelled)
                for kind, rows, labelled in con.execute(
                    f"SELECT coalesce(kind, 'reasoning'), count(*), {pseudo} "
                    f"FROM read_parquet('{glob}') GROUP BY ALL"
                ).fetchall()
            }
    finally:
        con.close()
    with tempfile.TemporaryDirectory() as cache:  # never a stale cache from an older publish
        ds_rows = datasets.load_dataset(str(folder), split="train", cache_dir=cache).num_rows
    if not ds_rows == db_rows == card_rows:
        raise PublishError(
            f"{folder}: row counts differ: datasets {ds_rows}, DuckDB {db_rows}, card {card_rows}"
        )
    if bad:
        raise PublishError(f"{folder}: {bad} row(s) with a null in {', '.join(PROVENANCE)}")
    problems = Counter(conversation_problem(m) for (m,) in conversations)
    problems.pop(None, None)
    if problems:
        raise PublishError(f"{folder}: invalid messages: {dict(problems)}")
    if clash := [c for c in TRL_FORMAT_KEYS if c in columns]:
        raise PublishError(
            f"{folder}: columns {clash} beside `messages` make TRL's format detection depend on "
            "the hash seed; publish again with this factory version (they become raw_*)"
        )
    if kinds and stated_kinds(body) != kinds:
        raise PublishError(
            f"{folder}: rows per kind differ: data {kinds}, card {stated_kinds(body)}"
        )
    return db_rows


# --- the Hub -------------------------------------------------------------------------------


def push_to_hub(folder: Path, repo: str) -> str:
    """Upload a published folder to the dataset repo `repo` in one commit; return its URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise PublishError(
            "--push-to-hub needs huggingface_hub: pip install huggingface_hub"
        ) from None
    api = HfApi()
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo,
        repo_type="dataset",
        commit_message=f"factory publish ({factory.__version__})",
        delete_patterns=["data/*"],  # old shards of another shard count go in the same commit
    )
    return str(info)
