"""The verify stage: one or more verifiers judge every record; a policy decides what is kept.

Verifiers (`verify.verifiers` in the recipe, the first is the primary):
  math   final-answer equivalence (filters/verify_math.py)
  code   the program run against the tests in a sandbox (filters/verify_code.py)
  judge  an LLM judge through any teacher backend (filters/judge.py)
  label  the input's own correctness label (`meta.label`, from `reverify` sources)
  reference  a free-text answer contains the reference or one of its `|` aliases, SQuAD-style
         normalized (filters/verify_reference.py; knowledge data, `parse.answer=text`)

Each returns (verdict, reason) per record with verdict in pass / fail / unverifiable / error.
All verdicts land in the record's `verdicts` column; `verdict` is the primary's. Policy
`primary` keeps what the primary passes; `all` keeps only what every verifier passes (a drop
then names the verifier: `judge:fail`). `factory stats` shows how the verifiers agree.
"""

from __future__ import annotations

from typing import Protocol

from factory.recipe import Recipe
from factory.record import Record
from factory.stage import Drop, Filter


class Checker(Protocol):
    name: str

    def check(self, records: list[Record]) -> list[tuple[str, str]]: ...

    def close(self) -> None: ...


class LabelChecker:
    """The dataset's own label (`meta.label`: true/false, 1/0, "correct"/"incorrect")."""

    name = "label"
    TRUE = frozenset({"true", "1", "yes", "correct", "pass", "passed"})
    FALSE = frozenset({"false", "0", "no", "incorrect", "wrong", "fail", "failed"})

    def check(self, records: list[Record]) -> list[tuple[str, str]]:
        out = []
        for r in records:
            label = str(r.meta.get("label", "")).strip().lower()
            if label in self.TRUE:
                out.append(("pass", "label_true"))
            elif label in self.FALSE:
                out.append(("fail", "label_false"))
            else:
                out.append(("unverifiable", "no_label"))
        return out

    def close(self) -> None:
        """Holds nothing."""


def build_checkers(recipe: Recipe) -> list[Checker]:
    checkers: list[Checker] = []
    for name in recipe.verify.verifiers:
        if name == "math":
            from filters.verify_math import MathChecker

            checkers.append(MathChecker(recipe.verify))
        elif name == "code":
            from filters.verify_code import CodeChecker

            checkers.append(CodeChecker(recipe.verify.code))
        elif name == "judge":
            from filters.judge import JudgeChecker

            checkers.append(JudgeChecker(recipe.verify.judge, recipe.judge_prompt()))
        elif name == "reference":
            from filters.verify_reference import ReferenceChecker

            checkers.append(ReferenceChecker())
        else:
            checkers.append(LabelChecker())
    return checkers


class Verify(Filter):
    name = "verify"
    batch_size = 64

    def __init__(self, checkers: list[Checker], policy: str = "primary") -> None:
        super().__init__()
        self.checkers, self.policy = checkers, policy

    def process(self, record: Record) -> Record | Drop:
        return self.process_batch([record])[0]

    def process_batch(self, records: list[Record]) -> list[Record | Drop]:
        results = [(c.name, c.check(records)) for c in self.checkers]
        out: list[Record | Drop] = []
        for i, record in enumerate(records):
            said = [(name, *verdicts[i]) for name, verdicts in results]
            record.verdicts = [{"verifier": n, "verdict": v, "reason": r} for n, v, r in said]
            _, verdict, reason = said[0]
            record.verdict = verdict
            failing = [(n, v, r) for n, v, r in said if v != "pass"]
            if verdict != "pass":
                out.append(Drop(reason))
            elif self.policy == "all" and failing:
                name, v, _ = failing[0]
                out.append(Drop(f"{name}:{v}"))
            else:
                record.meta = {**record.meta, "verify_method": reason}
                out.append(record)
        return out

    def close(self) -> None:
        for checker in self.checkers:
            checker.close()
