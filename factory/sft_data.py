"""Training conversations for `factory train`: published folders and run directories → one
`datasets.Dataset` with a single `messages` column, plus what went into it.

Inputs (each `{path, weight}` of a train recipe; relative paths: working directory, then the
repository root):

- a folder written by `factory publish` (`data/train-*.parquet`): its rows are already valid
  SFT conversations (publish checked them);
- a finished run directory (its current version's `data/*.parquet`): each kept trace becomes
  its training conversation through `factory.publish.sft_messages`, as `factory publish` would
  make it; rows that cannot be made valid are left out and counted by reason.

Mixing: `weight` is an input's share of the mix. With one input, its rows are taken as they
are. With several, the mix has as many rows as all inputs hold together, split by weight
(largest remainder): an input with fewer rows than its share is UP-sampled (all its rows, as
often as they fit, then a seeded subset) and one with more is DOWN-sampled (a seeded subset);
`InputInfo.repeated` counts the repeated rows and a warning names them, so nothing repeats
silently. Row choice depends only on the seed and the inputs, never on timing.

The dataset holds only `messages`: a `prompt` or `completion` column beside it would flip
TRL's format detection (see factory/publish.py), and TRL needs nothing else. Ids travel in
`SFTData.ids`, aligned with the rows.

The fingerprint is sha256 over every input's shard hashes and weight, and the seed: the same
files, weights and seed give the same fingerprint and the same rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from factory.errors import FactoryError
from factory.mix_recipe import largest_remainder
from factory.publish import sft_messages
from factory.recipe import data_path
from factory.storage.rundir import current_version
from factory.storage.shards import sha256_file
from factory.train_recipe import DatasetSpec

log = logging.getLogger(__name__)

COLUMNS = ("messages", "completion", "kind", "id", "run_id", "recipe_fingerprint")


class SFTDataError(FactoryError):
    """A training input cannot be read (missing, not a published folder or finished run,
    no `messages` column, no valid conversation)."""


@dataclass
class InputInfo:
    path: str
    layout: Literal["published", "run"]
    fingerprint: str  # sha256 over this input's shard hashes
    weight: float
    rows: int  # valid conversations it holds
    skipped: dict[str, int]  # invalid rows (run directories), by reason
    taken: int = 0  # rows of the mix drawn from it
    repeated: int = 0  # of those, repeats (up-sampling)
    recipe_fingerprints: list[str] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)


@dataclass
class SFTData:
    inputs: list[InputInfo]
    rows: int
    seed: int
    fingerprint: str
    ids: list[str]  # the id of each row of the dataset, in order


def load_sft_dataset(specs: list[DatasetSpec], seed: int = 0):
    """(datasets.Dataset with a `messages` column, SFTData) for these inputs, mixed by weight."""
    import datasets

    read = [_read_input(spec) for spec in specs]
    infos = [info for info, _, _ in read]
    targets = _targets([i.rows for i in infos], [i.weight for i in infos])
    conversations, ids = [], []
    for k, ((info, rows, row_ids), target) in enumerate(zip(read, targets, strict=True)):
        picked = _pick(len(rows), target, seed, k)
        info.taken, info.repeated = len(picked), max(0, len(picked) - len(set(picked)))
        if info.repeated:
            log.warning(
                "%s: up-sampled to %d rows for weight %g (%d rows repeated)",
                info.path,
                info.taken,
                info.weight,
                info.repeated,
            )
        conversations += [rows[i] for i in picked]
        ids += [row_ids[i] for i in picked]
    blob = json.dumps(
        {"inputs": [[i.fingerprint, i.weight] for i in infos], "seed": seed}, sort_keys=True
    )
    info = SFTData(
        inputs=infos,
        rows=len(conversations),
        seed=seed,
        fingerprint=hashlib.sha256(blob.encode()).hexdigest()[:16],
        ids=ids,
    )
    return datasets.Dataset.from_dict({"messages": conversations}), info


# --- one input -----------------------------------------------------------------------------


def _read_input(spec: DatasetSpec) -> tuple[InputInfo, list[list[dict]], list[str]]:
    import pyarrow.parquet as pq

    folder = data_path(spec.path)
    shards, layout = _shards(folder, spec.path)
    conversations, ids, skipped = [], [], Counter()
    recipes, runs = set(), set()
    for shard in shards:
        names = pq.read_schema(shard).names
        if "messages" not in names:
            raise SFTDataError(f"{shard} has no `messages` column: not a factory dataset")
        table = pq.read_table(shard, columns=[c for c in COLUMNS if c in names])
        cols = {c: table.column(c).to_pylist() for c in table.column_names}
        n = table.num_rows
        for i in range(n):
            stored = cols["messages"][i]
            if layout == "run":
                kind = (cols.get("kind") or [None] * n)[i] or "reasoning"
                turns, reason = sft_messages(
                    stored, (cols.get("completion") or [None] * n)[i], kind
                )
                if reason:
                    skipped[reason] += 1
                    continue
            else:
                turns = [{"role": m["role"], "content": m["content"]} for m in stored]
            conversations.append(turns)
            ids.append(str((cols.get("id") or [None] * n)[i] or f"{shard.name}:{i}"))
        recipes.update(v for v in cols.get("recipe_fingerprint", []) if v)
        runs.update(v for v in cols.get("run_id", []) if v)
    if not conversations:
        raise SFTDataError(
            f"train.datasets: {spec.path} holds no valid conversation "
            f"(skipped: {dict(skipped) or 'none'})"
        )
    digest = hashlib.sha256()
    for shard in shards:
        digest.update(f"{shard.name}:{sha256_file(shard)}\n".encode())
    info = InputInfo(
        path=str(folder),
        layout=layout,
        fingerprint=digest.hexdigest()[:16],
        weight=spec.weight,
        rows=len(conversations),
        skipped=dict(skipped),
        recipe_fingerprints=sorted(recipes),
        run_ids=sorted(runs),
    )
    return info, conversations, ids


def _shards(folder: Path, given: str) -> tuple[list[Path], Literal["published", "run"]]:
    published = sorted((folder / "data").glob("train-*.parquet"))
    if published and not (folder / "manifest.json").exists():
        return published, "published"
    base = current_version(folder) or folder  # an older run layout has no .current
    if (base / "manifest.json").is_file():
        return sorted((base / "data").glob("*.parquet")), "run"
    raise SFTDataError(
        f"train.datasets: {given} is neither a folder written by `factory publish` "
        "(data/train-*.parquet) nor a finished run directory (manifest.json); "
        f"looked at {folder.resolve()}"
    )


# --- mixing --------------------------------------------------------------------------------


def _targets(rows: list[int], weights: list[float]) -> list[int]:
    """Rows to draw from each input: all of one input; with several, their total split by
    weight (largest remainder, so the targets add up to the total exactly)."""
    return rows if len(rows) == 1 else largest_remainder(sum(rows), weights)


def _pick(n: int, target: int, seed: int, k: int) -> list[int]:
    """`target` row positions of an input of `n` rows: whole passes over all rows, then a
    seeded subset without replacement (down-sampling is the subset alone)."""
    import numpy as np

    rng = np.random.default_rng([seed, k])
    whole, rest = divmod(target, n)
    subset = sorted(rng.permutation(n)[:rest].tolist())
    return list(range(n)) * whole + subset
