"""Embedded CPU teacher throughput: single vs batched, and factory's overhead over bare HF.

Three measurements over the same math-cot prompts and sampling settings:
  bare-1   : the backend's generate (HF generate + decode) one prompt at a time
  bare-B   : the backend's generate on all prompts at once (left padding), no stage around it
  factory-B: factory's Generate stage (same batch): builds messages and records, journals each
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

    import tempfile

    from factory.generate import Generate, request_seed
    from factory.problems import load_problems
    from factory.prompt import PromptBuilder
    from factory.recipe import load_recipe
    from factory.record import sample_id
    from factory.storage.generations import GenerationStore
    from factory.teachers import load_teacher
    from factory.teachers.base import Request

    recipe = load_recipe(
        "math-cot",
        [
            f"source.limit={args.prompts}",
            "teacher.n=1",
            f"teacher.batch_size={args.prompts}",
            f"teacher.max_new_tokens={args.max_new_tokens}",
        ],
    )
    cfg, fp = recipe.teacher, recipe.generation_fingerprint()
    t0 = time.perf_counter()
    teacher = load_teacher(cfg)
    print(f"teacher load: {time.perf_counter() - t0:.1f} s (cached conversion)")
    problems = list(load_problems(recipe.source))
    builder = PromptBuilder.from_recipe(recipe)
    requests = []
    for p in problems:
        rid = sample_id(p.problem_id, 0, fp)
        messages = tuple(builder.teacher_messages(builder.training_messages(p.problem)))
        requests.append(Request(rid, messages, 0, request_seed(rid, cfg.seed)))

    def tokens(results) -> int:
        return sum(sample.completion_tokens for _, sample in results)

    t0 = time.perf_counter()
    single = [pair for r in requests[:6] for pair in teacher.generate([r], cfg)]
    bare1 = tokens(single) / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    bareb = tokens(list(teacher.generate(requests, cfg))) / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        store = GenerationStore(Path(tmp)).open()
        stage = Generate(lambda: teacher, cfg, builder, fp, store)
        t0 = time.perf_counter()
        records = list(stage.run(iter(problems)))
        fact = sum(r.completion_tokens for r in records) / (time.perf_counter() - t0)
        store.close()

    print(f"bare-1     {bare1:8.1f} completion tok/s (6 prompts, one at a time)")
    print(f"bare-{len(requests):<5} {bareb:8.1f} completion tok/s")
    print(f"factory-{len(requests):<2} {fact:8.1f} completion tok/s (with its journal)")
    print(
        f"factory / bare batched = {fact / bareb:.2f}x   factory batched / single = {fact / bare1:.2f}x"
    )


if __name__ == "__main__":
    main()
