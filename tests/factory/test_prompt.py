import pytest

from factory.errors import RecipeError
from factory.prompt import PromptBuilder
from factory.recipe import load_recipe


def test_training_and_teacher_messages():
    builder = PromptBuilder.from_recipe(load_recipe("math-cot"))
    training = builder.training_messages("What is {x} in \\frac{1}{2}?")
    assert [m["role"] for m in training] == ["system", "user"]
    assert training[1]["content"] == "What is {x} in \\frac{1}{2}?"  # braces survive
    teacher = builder.teacher_messages(training)
    assert [m["role"] for m in teacher] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert teacher[-1] == training[-1]
    assert "<think>" in teacher[2]["content"]  # the few-shot shows the format


def test_bad_fewshot_file(tmp_path):
    (tmp_path / "s.txt").write_text("S")
    (tmp_path / "u.txt").write_text("{problem}")
    (tmp_path / "f.jsonl").write_text(
        '{"role": "user", "content": "a"}\n{"role": "user", "content": "b"}\n'
    )
    path = tmp_path / "r.yaml"
    path.write_text("prompt: {system: s.txt, user: u.txt, fewshot: f.jsonl}\n")
    with pytest.raises(RecipeError, match="must alternate user, assistant"):
        PromptBuilder.from_recipe(load_recipe(str(path)))
    (tmp_path / "f.jsonl").write_text('{"role": "user"}\n')
    with pytest.raises(
        RecipeError, match=r"f.jsonl:1: expected a JSON object with role and content"
    ):
        PromptBuilder.from_recipe(load_recipe(str(path)))
