"""`factory eval`: a checkpoint (or any teacher) on held-out problems, scored by the verifiers.

An evaluation is a factory run of an eval recipe (`recipes/eval-*.yaml`, or any recipe) with
the model as the teacher — the same generation, parse and verify code as data generation, no
second implementation — followed by metrics over every sample's outcome
(`factory/eval_metrics.py`). The run is forced into eval shape:

- `teacher.model` = the model, `teacher.n` = k samples per problem;
- dedup (both levels), decontamination, `select` (rejection sampling, adaptive rounds,
  majority labels) and `journey` off: every sample of every problem reaches the scores.

A sample is correct when its verdict is `pass` (kept traces, `data/`); every other sample is
wrong: verified `fail` / `unverifiable` / `error`, or dropped before verification
(`truncated`, `no_answer`, a teacher failure…; `rejects/`). Problems without gold are not
scored (counted as `problems_without_gold`).

Results: `<checkpoint>/eval/<recipe>-<eval fingerprint>/` when the model is a local folder
(else `runs/eval/<model>/<recipe>-<eval fingerprint>/`, or `out`) holds the run directory and
`scores.json`: the metrics, the outcome counts, and a lineage block linking the checkpoint's
training record (`factory_train.json`, when the training side wrote one) to this eval. The
eval fingerprint is the recipe's fingerprint with the model and backend left out, so two
checkpoints evaluated with the same recipe and settings share it — that is what `compare`
pairs on.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import factory
from factory.errors import FactoryError
from factory.eval_metrics import score
from factory.pipeline import run_recipe
from factory.recipe import Recipe, data_path, load_recipe
from factory.storage.atomic import write_json
from factory.storage.rundir import current_version
from factory.teachers import Teacher
from factory.train import LINEAGE  # the record `factory train` writes next to a checkpoint

log = logging.getLogger(__name__)

SCORES = "scores.json"
# everything that would drop or add samples between the teacher and the scores
FORCED = (
    "dedup.problems.exact=false",
    "dedup.problems.near=false",
    "dedup.traces.exact=false",
    "dedup.traces.near=false",
    "decontaminate.enabled=false",
    "select.enabled=false",
    "select.adaptive.enabled=false",
    "select.majority_vote.enabled=false",
    "journey.enabled=false",
)
OUTCOME_COLUMNS = ["problem_id", "sample_index", "answer", "verdict"]


class EvalError(FactoryError):
    """An evaluation cannot be run or compared (bad k, no scores found, different evals)."""


def eval_recipe(
    model: str, recipe_name: str, overrides: list[str] | tuple[str, ...], k: int
) -> Recipe:
    """The recipe with the model as its teacher, k samples per problem, nothing filtered away."""
    if k < 1:
        raise EvalError(f"k: bad value {k!r} (allowed: an integer >= 1 samples per problem)")
    recipe = load_recipe(recipe_name, [*overrides, f"teacher.n={k}", *FORCED])
    # set on the typed recipe rather than as `key=value`: a path or a model id is a string as
    # written, never YAML (`1e3`, `a: b`); a local folder is made absolute so the run finds it
    # from any working directory
    recipe.teacher.model = str(Path(model).resolve()) if Path(model).exists() else model
    return recipe


def eval_fingerprint(recipe: Recipe) -> str:
    """The recipe's fingerprint without the model and backend: the same eval of any model."""
    blank = copy.deepcopy(recipe)
    blank.teacher.model = "<evaluated model>"
    blank.teacher.backend = "<any>"  # type: ignore[assignment]
    return blank.fingerprint()


def default_eval_out(model: str, recipe: Recipe) -> Path:
    """`<checkpoint>/eval/<recipe>-<fp>` for a local folder, else `runs/eval/<model>/...`."""
    folder = f"{recipe.name}-{eval_fingerprint(recipe)}"
    if Path(model).is_dir():
        return Path(model) / "eval" / folder
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model).name if Path(model).exists() else model)
    return Path("runs") / "eval" / slug.strip("_.") / folder


def evaluate(
    model: str,
    recipe_name: str,
    overrides: list[str] | tuple[str, ...] = (),
    k: int = 1,
    out: Path | None = None,
    teacher: Teacher | None = None,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Generate k samples per problem of `recipe_name` with `model`, verify, score, and write
    `scores.json` into the run directory; returns what it wrote plus `scores_path`.

    `teacher` is a loaded teacher to use instead of loading `model` (its `model_name` must be
    `model`); `resamples` and `seed` set the bootstrap intervals."""
    recipe = eval_recipe(model, recipe_name, overrides, k)
    out = Path(out) if out is not None else default_eval_out(model, recipe)
    manifest = run_recipe(recipe, out, teacher=teacher)
    outcomes, counts = read_outcomes(out)
    if not outcomes:
        raise EvalError(
            f"{out}: no problem with gold got a sample, nothing to score "
            f"(problems without gold: {counts['problems_without_gold']})"
        )
    metrics = score(outcomes, ks=[1, k], resamples=resamples, seed=seed)
    result = {
        "model": model,
        "recipe": recipe.name,
        "eval_fingerprint": eval_fingerprint(recipe),
        "k": k,
        "metrics": metrics,
        "outcomes": counts,
        "lineage": lineage(model, recipe, manifest, out, k),
    }
    path = out / SCORES
    write_json(path, result)
    log.info("scores written to %s", path)
    return {**result, "scores_path": str(path)}


# --- reading the run --------------------------------------------------------------------


def read_outcomes(run_dir: Path) -> tuple[dict[str, list[tuple[str | None, bool]]], dict]:
    """The outcome table of a finished eval run (problems in load order, samples by index)
    and the counts behind it: verdicts, drops before verification, unscored problems."""
    import pyarrow.parquet as pq

    version = current_version(run_dir)
    if version is None:
        raise EvalError(f"{run_dir}: not a finished factory run (nothing published)")
    problems = pq.read_table(version / "problems", columns=["problem_id", "gold"]).to_pylist()
    kept = pq.read_table(version / "data", columns=OUTCOME_COLUMNS).to_pylist()
    dropped = pq.read_table(
        version / "rejects", columns=[*OUTCOME_COLUMNS, "drop_reason"]
    ).to_pylist()
    samples: dict[str, dict[int, tuple[str | None, bool]]] = {}
    verdicts: Counter[str] = Counter()
    before_verify: Counter[str] = Counter()
    for row in kept + dropped:
        if row["sample_index"] is None:  # a problem-level drop (no gold): no sample to score
            continue
        by_index = samples.setdefault(row["problem_id"], {})
        if row["sample_index"] in by_index:
            continue  # one outcome per sample
        by_index[row["sample_index"]] = (row["answer"], row["verdict"] == "pass")
        if row["verdict"] is None:
            before_verify[row.get("drop_reason") or "unknown"] += 1
        else:
            verdicts[row["verdict"]] += 1
    with_gold = [p["problem_id"] for p in problems if p["gold"] is not None]
    outcomes = {
        pid: [samples[pid][i] for i in sorted(samples[pid])] for pid in with_gold if pid in samples
    }
    counts = {
        "samples": sum(len(v) for v in outcomes.values()),
        "verdicts": dict(sorted(verdicts.items())),
        "dropped_before_verify": dict(before_verify.most_common()),
        "problems_loaded": len(problems),
        "problems_without_gold": len(problems) - len(with_gold),
        "problems_unsampled": len(with_gold) - len(outcomes),  # e.g. a budget ran out
    }
    return outcomes, counts


def lineage(
    model: str, recipe: Recipe, manifest: dict[str, Any], run_dir: Path, k: int
) -> dict[str, Any]:
    """recipe fingerprint → dataset → checkpoint (the training record) → this eval."""
    folder = Path(model) if Path(model).is_dir() else None
    train_record = None
    if folder is not None and (folder / LINEAGE).is_file():
        try:
            train_record = json.loads((folder / LINEAGE).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            log.warning("%s: not valid JSON (%s); lineage without it", folder / LINEAGE, exc)
    t = recipe.teacher
    return {
        "model": model,
        "model_path": str(folder.resolve()) if folder is not None else None,
        "training": train_record,  # factory_train.json as written, or None
        "eval_recipe": recipe.name,
        "eval_fingerprint": eval_fingerprint(recipe),
        "run_recipe_fingerprint": manifest.get("recipe_fingerprint"),
        "generation_fingerprint": manifest.get("generation_fingerprint"),
        "eval_run_id": manifest.get("run_id"),
        "run_dir": str(Path(run_dir).resolve()),
        "source": _source(recipe),
        "k": k,
        "teacher": {
            "backend": t.backend,
            "temperature": t.temperature,
            "top_p": t.top_p,
            "max_new_tokens": t.max_new_tokens,
            "seed": t.seed,
        },
        "factory_version": factory.__version__,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _source(recipe: Recipe) -> dict[str, Any]:
    from factory.storage.shards import sha256_file

    s = recipe.source
    info: dict[str, Any] = {"kind": s.kind, "limit": s.limit, "label": s.label}
    if s.kind == "procedural":
        info.update(generators=s.generators, generator_args=s.generator_args, seed=s.seed)
    elif s.kind == "file" and s.path:
        path = data_path(s.path)
        info.update(path=str(path.resolve()), sha256=sha256_file(path) if path.is_file() else None)
    else:
        info.update(name=s.name, subset=s.subset, split=s.split)
    return info


# --- compare ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareRow:
    metric: str
    a: float
    b: float
    delta: float  # b - a
    a_ci: tuple[float, float]
    b_ci: tuple[float, float]
    ci_overlap: bool  # a rough check, not a significance test


def find_scores(path: Path, recipe: str | None = None) -> list[Path]:
    """scores.json files at `path`: the file itself, a run directory holding one, or a
    checkpoint folder with eval/*/scores.json (or a folder of eval run directories)."""
    path = Path(path)
    if path.is_file():
        found = [path]
    elif (path / SCORES).is_file():
        found = [path / SCORES]
    else:
        found = sorted(path.glob(f"eval/*/{SCORES}")) or sorted(path.glob(f"*/{SCORES}"))
    if recipe is not None:
        found = [f for f in found if _load(f).get("recipe") == recipe]
    if not found:
        which = f" for recipe {recipe}" if recipe else ""
        raise EvalError(f"{path}: no {SCORES}{which} (run `factory eval` on it first)")
    return found


def compare(a: Path, b: Path, recipe: str | None = None) -> list[CompareRow]:
    """Side by side: the metrics of two evaluations of the same eval (same eval fingerprint),
    with b - a and whether the 95% intervals overlap. `a` and `b` are scores.json files, eval
    run directories or checkpoint folders; `recipe` picks one eval where a folder has several."""
    sa, sb = _pick(find_scores(a, recipe), find_scores(b, recipe), a, b)
    ma, mb = sa["metrics"], sb["metrics"]
    rows = []
    for name in ma["ci"]:
        if name not in mb or name.endswith("_wilson"):
            continue
        a_ci, b_ci = tuple(ma["ci"][name]), tuple(mb["ci"][name])
        rows.append(
            CompareRow(
                metric=name,
                a=ma[name],
                b=mb[name],
                delta=mb[name] - ma[name],
                a_ci=a_ci,
                b_ci=b_ci,
                ci_overlap=a_ci[0] <= b_ci[1] and b_ci[0] <= a_ci[1],
            )
        )
    return rows


def _pick(found_a: list[Path], found_b: list[Path], a: Path, b: Path) -> tuple[dict, dict]:
    """The one pair of scores that share an eval fingerprint."""
    by_fp_a = {s["eval_fingerprint"]: s for s in map(_load, found_a)}
    by_fp_b = {s["eval_fingerprint"]: s for s in map(_load, found_b)}
    common = sorted(set(by_fp_a) & set(by_fp_b))
    if not common:
        raise EvalError(
            f"{a} and {b} hold no evaluation of the same eval (eval fingerprints "
            f"{sorted(by_fp_a)} vs {sorted(by_fp_b)}): evaluate both with the same recipe, "
            "overrides and k"
        )
    if len(common) > 1:
        names = sorted(f"{by_fp_a[fp]['recipe']} ({fp})" for fp in common)
        raise EvalError(
            f"{a} and {b} share several evals ({', '.join(names)}): choose one with the recipe "
            "name or pass the two scores.json files"
        )
    return by_fp_a[common[0]], by_fp_b[common[0]]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvalError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "metrics" not in data or "eval_fingerprint" not in data:
        raise EvalError(f"{path}: not a factory eval {SCORES} (no metrics / eval_fingerprint)")
    return data
