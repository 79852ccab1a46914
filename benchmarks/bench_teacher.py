"""Embedded CPU teacher throughput: single vs batched, and factory's overhead over bare HF.

Three measurements over the same math-cot prompts and sampling settings:
  bare-1   : the backend's generate (HF generate + decode) one prompt at a time
  bare-B   : the backend's generate on all prompts at once (left padding), no stage around it
  factory-B: factory's Generate stage (same batch), which also builds messages and records
Printed: completion tokens/s for each, factory-B / bare-B (overhead; ~1.0 is the goal) and
factory-B / bare-1 (what batching buys).

    python benchmarks/bench_teacher.py [--prompts 24] [--max-new-tokens 96]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    args = ap.parse_args()

    from factory.generate import Generate
    from factory.problems import load_problems
    from factory.prompt import PromptBuilder
    from factory.recipe import load_recipe
    from factory.teachers import load_teacher

    recipe = load_recipe(
        "math-cot",
        [
            f"source.limit={args.prompts}",
            "teacher.n=1",
            f"teacher.batch_size={args.prompts}",
            f"teacher.max_new_tokens={args.max_new_tokens}",
        ],
    )
    cfg = recipe.teacher
    t0 = time.perf_counter()
    teacher = load_teacher(cfg)
    print(f"teacher load: {time.perf_counter() - t0:.1f} s (cached conversion)")
    problems = list(load_problems(recipe.source))
    builder = PromptBuilder.from_recipe(recipe)
    prompts = [builder.teacher_messages(builder.training_messages(p.problem)) for p in problems]

    def tokens(samples) -> int:
        return sum(s.completion_tokens for outs in samples for s in outs)

    t0 = time.perf_counter()
    single = [teacher.generate([p], cfg, i)[0] for i, p in enumerate(prompts[:6])]
    bare1 = tokens(single) / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    bareb = tokens(teacher.generate(prompts, cfg, 0)) / (time.perf_counter() - t0)

    stage = Generate(teacher, cfg, builder, recipe.generation_fingerprint())
    t0 = time.perf_counter()
    records = list(stage.run(iter(problems)))
    fact = sum(r.completion_tokens for r in records) / (time.perf_counter() - t0)

    print(f"bare-1     {bare1:8.1f} completion tok/s (6 prompts, one at a time)")
    print(f"bare-{len(prompts):<5} {bareb:8.1f} completion tok/s")
    print(f"factory-{len(prompts):<2} {fact:8.1f} completion tok/s")
    print(
        f"factory / bare batched = {fact / bareb:.2f}x   factory batched / single = {fact / bare1:.2f}x"
    )


if __name__ == "__main__":
    main()
