"""The `r1-mix` recipe: typed dataclasses for a mix of finished runs and published datasets.

A mix recipe is a YAML file with a top-level `mix:` mapping (that is how `factory run` tells
it from a run recipe). It fills these dataclasses through `factory.typed.build`, so an unknown
key or a bad value fails before any work, naming the key, the value and what is allowed.

    mix:
      unit: samples            # or tokens (completion tokens; estimated from text when null)
      seed: 0
      max_tokens: 4096         # drop rows with more completion tokens first; null = no cap
      total: null              # with weights: the mix's size, split by weight
      buckets:
        - name: reasoning
          target: 600000       # or weight: 3 (with mix.total)
          inputs: [{recipe: math-cot}, {path: runs/foo}, {path: published/bar}]
          where: "kind = 'reasoning'"   # optional DuckDB predicate over the input rows

Command-line overrides are dotted keys as for run recipes; a bucket is addressed by its name:
`mix.buckets.reasoning.target=1000`, `mix.seed=1`, `mix.unit=tokens`.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from factory import typed
from factory.errors import RecipeError


@dataclass
class MixInput:
    """One source of rows: the default run directory of a run recipe, or a folder (a finished
    run directory or a dataset folder written by `factory publish`)."""

    recipe: str | None = None  # a recipe name or .yaml path: its default run directory
    path: str | None = None  # relative to the working directory
    overrides: list[str] = field(default_factory=list)  # with `recipe`: key=value overrides

    def __post_init__(self) -> None:
        if (self.recipe is None) == (self.path is None):
            raise RecipeError(
                f"mix input {self.label()}: give exactly one of 'recipe' (a run recipe's "
                "default run directory) or 'path' (a run directory or a published folder)"
            )
        if self.overrides and self.recipe is None:
            raise RecipeError(
                f"mix input {self.label()}: 'overrides' go with 'recipe', not with 'path'"
            )

    def label(self) -> str:
        if self.recipe is not None:
            return " ".join([f"recipe={self.recipe}", *self.overrides])
        return f"path={self.path}"


@dataclass
class Bucket:
    name: str = ""
    inputs: list[MixInput] = field(default_factory=list)
    target: int | None = None  # in mix.unit; or `weight` with mix.total
    weight: float | None = None
    where: str | None = None  # DuckDB SQL predicate over the input rows' columns

    def __post_init__(self) -> None:
        if not self.name:
            raise RecipeError("mix.buckets: every bucket needs a 'name'")
        if not self.inputs:
            raise RecipeError(
                f"mix.buckets.{self.name}.inputs: name at least one input "
                "({recipe: NAME} or {path: DIR})"
            )
        if self.target is not None and self.target < 0:
            raise RecipeError(f"mix.buckets.{self.name}.target: bad value {self.target} (>= 0)")
        if self.weight is not None and not self.weight > 0:
            raise RecipeError(f"mix.buckets.{self.name}.weight: bad value {self.weight} (> 0)")
        if self.where is not None and not self.where.strip():
            raise RecipeError(f"mix.buckets.{self.name}.where: empty predicate (use null)")


@dataclass
class MixConfig:
    buckets: list[Bucket] = field(default_factory=list)
    unit: Literal["samples", "tokens"] = "samples"
    seed: int = 0
    max_tokens: int | None = None  # completion tokens; longer rows are dropped before mixing
    total: int | None = None  # with per-bucket weights instead of targets

    def __post_init__(self) -> None:
        if not self.buckets:
            raise RecipeError("mix.buckets: name at least one bucket")
        names = [b.name for b in self.buckets]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise RecipeError(f"mix.buckets: bucket names must be unique, repeated: {dup}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise RecipeError(f"mix.max_tokens: bad value {self.max_tokens} (>= 1, or null)")
        with_target = [b.name for b in self.buckets if b.target is not None]
        with_weight = [b.name for b in self.buckets if b.weight is not None]
        if self.total is None:
            if with_weight or len(with_target) != len(self.buckets):
                raise RecipeError(
                    "mix.buckets: give every bucket a 'target' (in mix.unit), or set mix.total "
                    f"and give every bucket a 'weight' (targets: {with_target}, weights: "
                    f"{with_weight})"
                )
        else:
            if self.total < 0:
                raise RecipeError(f"mix.total: bad value {self.total} (>= 0)")
            if with_target or len(with_weight) != len(self.buckets):
                raise RecipeError(
                    f"mix.total={self.total}: give every bucket a 'weight' and none a 'target' "
                    f"(targets: {with_target}, weights: {with_weight})"
                )

    def targets(self) -> dict[str, int]:
        """Each bucket's target in `unit`: as given, or `total` split by weight (largest
        remainder, so the targets add up to `total` exactly)."""
        if self.total is None:
            return {b.name: int(b.target or 0) for b in self.buckets}
        split = largest_remainder(self.total, [float(b.weight or 0) for b in self.buckets])
        return {b.name: n for b, n in zip(self.buckets, split, strict=True)}


def largest_remainder(total: int, weights: list[float]) -> list[int]:
    """`total` split by `weights` into whole parts that add up to `total` exactly: each its
    floor, then one more to the largest remainders (ties: the earlier weight)."""
    share = [total * w / sum(weights) for w in weights]
    out = [int(s) for s in share]
    order = sorted(range(len(share)), key=lambda k: (-(share[k] - out[k]), k))
    for k in order[: total - sum(out)]:
        out[k] += 1
    return out


@dataclass
class MixOutput:
    shard_rows: int = 50_000
    compression: Literal["zstd", "snappy", "none"] = "zstd"

    def __post_init__(self) -> None:
        if self.shard_rows < 1:
            raise RecipeError(f"output.shard_rows: bad value {self.shard_rows} (>= 1)")


@dataclass
class MixRecipe:
    name: str
    mix: MixConfig = field(default_factory=MixConfig)
    description: str = ""
    output: MixOutput = field(default_factory=MixOutput)

    def to_dict(self) -> dict[str, Any]:
        return typed.to_dict(self)

    def fingerprint(self) -> str:
        """Changes with any setting of the mix (not with its inputs' content: the manifest's
        `recipe_fingerprint` adds that); names the default run directory."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- loading -------------------------------------------------------------------------------


def is_mix_recipe(name: str) -> bool:
    """True when recipe `name` (a name in recipes/ or a .yaml path) has a top-level `mix:`."""
    from factory.recipe import has_section

    return has_section(name, "mix")


def load_mix_recipe(name: str, overrides: list[str] | tuple[str, ...] = ()) -> MixRecipe:
    from factory.recipe import apply_override, find_recipe, read_yaml

    path = find_recipe(name)
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("mix"), dict):
        raise RecipeError(f"recipe {path} has no `mix:` mapping: it is not a mix recipe")
    data = copy.deepcopy(data)
    data.setdefault("name", path.stem)
    buckets = data["mix"].get("buckets")
    by_name = _buckets_by_name(buckets) if isinstance(buckets, list) else None
    if by_name is not None:
        data["mix"]["buckets"] = by_name
    for item in overrides:
        _check_bucket_override(item, by_name)
        apply_override(data, item)
    if isinstance(data["mix"].get("buckets"), dict):  # back to the list the dataclass takes
        data["mix"]["buckets"] = [
            {"name": n, **(b if isinstance(b, dict) else {})}
            for n, b in data["mix"]["buckets"].items()
        ]
    return typed.build(MixRecipe, data)


def _buckets_by_name(buckets: list[Any]) -> dict[str, Any] | None:
    """The bucket list keyed by name, so `mix.buckets.NAME.key=value` overrides can address a
    bucket; None (left as a list, for the dataclass to report) when a bucket has no name."""
    out: dict[str, Any] = {}
    for b in buckets:
        if not isinstance(b, dict) or not b.get("name") or str(b["name"]) in out:
            return None
        out[str(b["name"])] = {k: v for k, v in b.items() if k != "name"}
    return out


def _check_bucket_override(item: str, by_name: dict[str, Any] | None) -> None:
    key = item.partition("=")[0]
    parts = key.split(".")
    if parts[:2] != ["mix", "buckets"] or len(parts) < 4:
        return
    if by_name is None or parts[2] not in by_name:
        known = list(by_name or {})
        close = difflib.get_close_matches(parts[2], known, n=1)
        hint = f" — did you mean '{close[0]}'?" if close else ""
        raise RecipeError(
            f"override '{item}': unknown bucket '{parts[2]}'{hint} (buckets: {', '.join(known)})"
        )
