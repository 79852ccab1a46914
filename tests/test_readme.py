"""The README is part of the product: its commands are what CI runs, and every column and
recipe key it promises exists (and every one that exists is documented)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from factory.recipe import Recipe
from factory.record import arrow_schema

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.DOTALL)


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    run_cmd, test_cmd = (b.strip() for b in _bash_blocks()[:2])
    assert run_cmd.startswith("python3 -m venv .venv") and run_cmd.endswith(
        "factory run recipe=math-cot"
    )
    assert "python3 -m venv .venv" in test_cmd and test_cmd.endswith("python -m pytest -q")
    ci_lines = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == test_cmd  # exactly the README's test command
    assert "rm -rf .venv .venv-vllm" in ci_lines  # from scratch


def test_every_column_is_documented():
    documented = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", README, re.MULTILINE))
    names = {n for pair in documented for n in pair if n}
    for field in arrow_schema({"stage": "string", "drop_reason": "string"}):
        assert field.name in names, f"column {field.name} missing from the README's column table"


def _recipe_keys() -> list[str]:
    keys = []
    for f in dataclasses.fields(Recipe):
        if not f.init or f.name == "dedup":  # dedup is documented as one block for both levels
            continue
        group = f.default_factory() if f.default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(group):
            keys += [f"{f.name}.{sub.name}" for sub in dataclasses.fields(group)]
        else:
            keys.append(f.name)
    return keys


def test_every_recipe_key_is_documented():
    keys = _recipe_keys()
    assert "teacher.temperature" in keys and "source.generator_args" in keys and "name" in keys
    for key in keys:
        assert f"`{key}`" in README, f"recipe key {key} missing from the README's recipe table"
    for key in ("exact", "near", "threshold", "num_perm", "shingle", "fields"):
        assert f"`  .{key}`" in README, key
