"""`factory dedup DIR [dedup.key=value ...]`: dedup a finished run again, with other settings.

The run's kept traces and the traces its earlier dedup dropped go through the traces-level
`Dedup` stage with the run's recipe plus the overrides (only `dedup.*` keys); everything else
is carried over as it is. The result is a new version of the run directory, published by the
same atomic swap as `factory run`: `data` holds the survivors, `rejects` the other rejects
plus this dedup's duplicates, `problems` is copied, and the manifest records the new dedup
report and settings (and, under `rededup_of`, the version it started from).

Loosening the settings brings earlier duplicates back; tightening drops more. No teacher is
asked anything.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factory.errors import RecipeError, RunDirError
from factory.recipe import Recipe, apply_override
from factory.record import Record
from factory.stage import Drop, chain
from factory.storage.rundir import RunDir, current_version
from factory.storage.shards import read_batches
from factory.typed import build

DEDUP_STAGES = ("dedup_traces", "dedup_traces_exact", "dedup_traces_near")  # older names too


def _rows(folder: Path) -> Iterator[dict[str, Any]]:
    for file in sorted(folder.glob("*.parquet")):
        for batch in read_batches(file):
            yield from batch.to_pylist()


def dedup_run(path: Path, overrides: list[str]) -> dict[str, Any]:
    from factory.pipeline import _iso, new_run_id, open_writers
    from filters.dedup import Dedup

    started = time.time()
    path = Path(path)
    with RunDir(path) as rundir:
        previous = rundir.manifest()
        source = current_version(path)
        if previous is None or source is None:
            raise RunDirError(f"{path} has no published version: run `factory run` first")
        data = copy.deepcopy(previous["recipe"])
        for item in overrides:
            if not item.startswith("dedup."):
                raise RecipeError(
                    f"{item!r}: factory dedup takes dedup.* settings only (e.g. "
                    "dedup.traces.threshold=0.8); other changes need `factory run`"
                )
            apply_override(data, item)
        recipe: Recipe = build(Recipe, data)
        cfg = recipe.dedup.traces
        if not (cfg.exact or cfg.near):
            raise RecipeError("dedup.traces: exact and near are both off: nothing to do")
        run_id = new_run_id(recipe)
        fingerprint = _fingerprint(previous, recipe)
        traces, rejects, problems = open_writers(rundir, run_id, recipe, fingerprint)
        for row in _rows(source / "problems"):
            problems.add(row)
        earlier_duplicates = 0

        def candidates() -> Iterator[Record]:
            nonlocal earlier_duplicates
            for row in _rows(source / "data"):
                yield Record.from_row(row)
            for row in _rows(source / "rejects"):
                if row.get("stage") in DEDUP_STAGES:
                    earlier_duplicates += 1
                    yield Record.from_row(row)
                else:
                    rejects.add(row)

        def on_drop(record: Record, stage: str, drop: Drop) -> None:
            rejects.add({**record.row(), "stage": stage, "drop_reason": drop.reason})

        stage = Dedup(cfg, "traces", recipe.dedup, path / ".work")
        stream, _ = chain(candidates(), [stage], on_drop)
        try:
            for record in stream:
                traces.add(record.row())
        finally:
            stage.close()
        files = {
            "traces": traces.publish(),
            "rejects": rejects.publish(),
            "problems": problems.publish(),
        }
        funnel = {**previous["funnel"], "deduped": traces.total, "kept": traces.total}
        stages = [s for s in previous["stages"] if s["name"] not in DEDUP_STAGES]
        manifest = {
            **previous,
            "run_id": run_id,
            "recipe": recipe.to_dict(),
            "recipe_fingerprint": fingerprint,
            "rededup_of": {
                "run_id": previous["run_id"],
                "recipe_fingerprint": previous["recipe_fingerprint"],
                "kept": previous["rows"]["traces"],
                "earlier_duplicates": earlier_duplicates,
            },
            "started_at": _iso(started),
            "finished_at": _iso(time.time()),
            "seconds": round(time.time() - started, 2),
            "funnel": funnel,
            "dedup": {**previous.get("dedup", {}), "traces": stage.report()},
            "stages": [*stages, stage.stats.as_dict()],
            "rows": {"traces": traces.total, "rejects": rejects.total, "problems": problems.total},
            "files": files,
        }
        rundir.publish(run_id, manifest)
    return manifest


def _fingerprint(previous: dict[str, Any], recipe: Recipe) -> str:
    """The run's fingerprint with the new dedup settings folded in (prompts are not reread:
    the samples were made with the ones the run recorded)."""
    from factory.recipe import DEDUP_EXECUTION_ONLY, _digest

    dedup = recipe.to_dict()["dedup"]
    for execution_only in DEDUP_EXECUTION_ONLY:
        dedup.pop(execution_only)
    return _digest({"base": previous["recipe_fingerprint"], "dedup": dedup})
