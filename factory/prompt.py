"""Chat messages from the recipe's prompt files.

Two views of one prompt: the *training* messages (system + user) that go into the dataset,
and the *teacher* messages, which add the few-shot turns that steer a small teacher's format.
Few-shot turns never reach the training data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from factory.errors import RecipeError
from factory.recipe import Recipe
from factory.record import Message


@dataclass(frozen=True)
class PromptBuilder:
    system: str
    user_template: str
    fewshot: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> PromptBuilder:
        texts = recipe.prompt_texts()
        return cls(
            system=texts["system"].strip(),
            user_template=texts["user"],
            fewshot=_parse_fewshot(texts.get("fewshot"), recipe.prompt.fewshot),
        )

    def training_messages(self, problem: str) -> list[Message]:
        # replace, not str.format: templates and problems are full of LaTeX braces
        user = self.user_template.replace("{problem}", problem).strip()
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def teacher_messages(self, training: list[Message]) -> list[Message]:
        shots = [{"role": role, "content": content} for role, content in self.fewshot]
        return [training[0], *shots, *training[1:]]


def _parse_fewshot(text: str | None, name: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    turns = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            turn = json.loads(line)
            turns.append((turn["role"], turn["content"]))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise RecipeError(
                f"prompt.fewshot {name}:{lineno}: expected a JSON object with role and content ({exc})"
            ) from None
    roles = [role for role, _ in turns]
    if roles != ["user", "assistant"] * (len(roles) // 2) or len(roles) % 2:
        raise RecipeError(f"prompt.fewshot {name}: turns must alternate user, assistant, …")
    return tuple(turns)
