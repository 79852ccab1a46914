from __future__ import annotations

from pathlib import Path

import pytest

from factory.errors import RecipeError
from factory.recipe import known_recipes, load_recipe, parse_value


def test_shipped_recipes_load():
    assert {"math-cot", "gsm8k-cot"} <= set(known_recipes())
    from factory.mix_recipe import is_mix_recipe, load_mix_recipe
    from factory.train_recipe import is_train_recipe, load_train_recipe

    assert {"knowledge", "journey-math", "r1-mix"} <= set(known_recipes())
    for name in known_recipes():
        if is_mix_recipe(name):  # composes finished runs: its own typed recipe
            assert load_mix_recipe(name).name == name
            continue
        if is_train_recipe(name):  # fine-tunes a student: `factory train`
            assert load_train_recipe(name).name == name
            continue
        recipe = load_recipe(name)
        assert recipe.name == name
        assert len(recipe.fingerprint()) == 16


def test_overrides_compose():
    r = load_recipe("math-cot", ["teacher.temperature=0.6", "source.limit=8", "teacher.n=4"])
    assert r.teacher.temperature == 0.6
    assert r.source.limit == 8
    assert r.teacher.n == 4
    r = load_recipe("math-cot", ["source.generators=[chain_sum]", "verify.memory_mb=null"])
    assert r.source.generators == ["chain_sum"]
    assert r.verify.memory_mb is None


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "teacher.temprature=0.5",
            "unknown recipe key 'teacher.temprature' — did you mean 'temperature'?",
        ),
        ("techer.n=2", "did you mean 'teacher'?"),
        ("teacher.backend=vlm", "teacher.backend: bad value 'vlm'"),
        ("teacher.n=two", "teacher.n: bad value 'two' (expected int)"),
        ("teacher.n=0", "teacher.n: bad value 0 (allowed: an integer >= 1)"),
        ("teacher.top_p=1.5", "teacher.top_p: bad value 1.5"),
        ("parse.think=always", "allowed: 'optional', 'required'"),
        ("dedup.traces.fields=[problem,text]", "dedup.traces.fields[1]: bad value 'text'"),
        ("source.kind=file", "source.path: required when source.kind is 'file'"),
        ("teacher.temperature.x=1", "'teacher.temperature' is a value, not a group of fields"),
        ("teacher", "must look like key=value"),
    ],
)
def test_bad_overrides_fail_with_the_key_and_the_fix(override, expected):
    with pytest.raises(RecipeError) as info:
        load_recipe("math-cot", [override])
    assert expected in str(info.value)


def test_literal_error_lists_allowed_values():
    with pytest.raises(RecipeError, match=r"allowed: 'transformers', 'openai'"):
        load_recipe("math-cot", ["teacher.backend=sglang"])


def test_unknown_recipe_lists_known_ones():
    with pytest.raises(RecipeError) as info:
        load_recipe("math-cott")
    msg = str(info.value)
    assert "unknown recipe 'math-cott'" in msg and "did you mean 'math-cot'" in msg
    assert "gsm8k-cot" in msg


def test_recipe_from_path_and_its_errors(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("teacher: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(str(bad))
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("teacher:\n  n: 2\nfilterz: {}\n")
    with pytest.raises(RecipeError, match="unknown recipe key 'filterz'"):
        load_recipe(str(unknown))
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(str(tmp_path / "missing.yaml"))


def test_prompt_paths_resolve_next_to_the_recipe(tmp_path: Path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "sys.txt").write_text("Be brief.")
    (tmp_path / "p" / "user.txt").write_text("Solve: {problem}")
    path = tmp_path / "mine.yaml"
    path.write_text("prompt: {system: p/sys.txt, user: p/user.txt}\n")
    assert load_recipe(str(path)).prompt_texts()["system"] == "Be brief."
    (tmp_path / "p" / "user.txt").write_text("no slot here")
    with pytest.raises(RecipeError, match=r"must contain the '\{problem\}' slot"):
        load_recipe(str(path))
    path.write_text("prompt: {system: p/missing.txt, user: p/user.txt}\n")
    with pytest.raises(RecipeError, match="prompt.system: file not found"):
        load_recipe(str(path))


def test_fingerprints():
    base = load_recipe("math-cot")
    # execution and filter settings do not change what the teacher is asked
    for same in ("verify.timeout_s=9", "dedup.traces.near=false", "parse.think=required"):
        other = load_recipe("math-cot", [same])
        assert other.generation_fingerprint() == base.generation_fingerprint(), same
        assert other.fingerprint() != base.fingerprint(), same  # but the recipe did change
    # execution-only settings change neither fingerprint: they never force a rerun
    for execution in ("teacher.batch_size=7", "teacher.threads=1", "teacher.concurrency=3"):
        other = load_recipe("math-cot", [execution])
        assert other.fingerprint() == base.fingerprint(), execution
        assert other.generation_fingerprint() == base.generation_fingerprint(), execution
    for changed in (
        "teacher.temperature=0.3",
        "teacher.seed=1",
        "teacher.max_new_tokens=10",
        "teacher.n=3",
    ):
        assert (
            load_recipe("math-cot", [changed]).generation_fingerprint()
            != base.generation_fingerprint()
        )
    assert load_recipe("math-cot").fingerprint() == base.fingerprint()  # deterministic


def test_prompt_text_is_part_of_the_generation_fingerprint(tmp_path: Path):
    (tmp_path / "sys.txt").write_text("A")
    (tmp_path / "user.txt").write_text("{problem}")
    path = tmp_path / "r.yaml"
    path.write_text("prompt: {system: sys.txt, user: user.txt}\n")
    first = load_recipe(str(path)).generation_fingerprint()
    (tmp_path / "sys.txt").write_text("B")
    assert load_recipe(str(path)).generation_fingerprint() != first


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0.6", 0.6),
        ("1e-3", 0.001),
        ("3", 3),
        ("null", None),
        ("true", True),
        ("[a, b]", ["a", "b"]),
        ("abc", "abc"),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_settings_added_later_leave_older_fingerprints_alone():
    """Runs made before `teacher.solver_error_rate` and `source.difficulty_field` existed keep
    their fingerprints (their folder, their stored samples): the values below are those of the
    shipped math-cot and knowledge recipes' runs before those settings were added."""
    for name, generation, recipe in (
        ("math-cot", "4290f5db5c1b9df3", "aa87a9eba26db8c4"),
        ("knowledge", "bbec4687e1610413", "d9ea2dcf80e1fa5a"),
    ):
        r = load_recipe(name)
        assert (r.generation_fingerprint(), r.fingerprint()) == (generation, recipe), name
    # set to anything else, they are part of what a run is
    slips = load_recipe("math-cot", ["teacher.solver_error_rate=0.2"])
    assert slips.generation_fingerprint() != "4290f5db5c1b9df3"
    level = load_recipe("math-cot", ["source.difficulty_field=level"])
    assert level.fingerprint() != "aa87a9eba26db8c4"
    assert level.generation_fingerprint() == "4290f5db5c1b9df3"  # not a teacher setting
