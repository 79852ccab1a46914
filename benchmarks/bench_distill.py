"""Proof that the data helps: distill SmolLM2-135M on factory-curated arithmetic traces (CPU).

    python benchmarks/bench_distill.py                 # the full proof (~30-40 min on 2 cores)
    python benchmarks/bench_distill.py --quick         # mechanics only (what CI runs, ~2 min)

The whole path is factory's own, stage by stage:

1. held-out problems: `eval-arith` (reasoning-gym, seed 9001); any of them that also occurs
   among the training problems is removed from training (exact problem text);
2. training traces: `arith-solver` — the procedural solver (factory/teachers/solver.py) is the
   teacher that is better at the task than the student; traces go through parse, verify,
   dedup and decontamination like any model's, and are published with `factory publish`;
3. journey traces: the same problems with 4 solver samples each and a 25% chance per operation
   of a slip, so problems have wrong and right samples; `journey.enabled` builds wrong attempt +
   reflection + correction rows (share capped at 30%), published the same way;
4. baseline: `factory eval` of the untrained student (greedy, one sample per problem);
5. train the student on the plain traces for `--steps` optimizer steps (`distill-smol`), eval;
6. train a fresh student for the same steps on the journey mix, eval.

Printed: pass@1 with its 95% Wilson interval before and after each training, the gain over
the baseline, the journey-vs-plain difference, and the time of every phase. Same budget means
the same number of optimizer steps and batch size, so both students see the same number of
samples; the journey mix has longer samples, so it sees more tokens.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _problems_file(path: Path, train_n: int, eval_n: int) -> tuple[int, int]:
    """Training problems minus any held-out one, as a jsonl file the recipes read."""
    from factory.problems import load_problems
    from factory.recipe import load_recipe

    held_out = {
        p.problem
        for p in load_problems(load_recipe("eval-arith", [f"source.limit={eval_n}"]).source)
    }
    rows, overlap = [], 0
    for p in load_problems(load_recipe("arith-solver", [f"source.limit={train_n}"]).source):
        if p.problem in held_out:
            overlap += 1
            continue
        rows.append({"id": p.problem_id, "question": p.problem, "answer": p.gold})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows), overlap


def _data(work: Path, problems: Path, journey: bool) -> tuple[Path, dict]:
    from factory.pipeline import run_recipe
    from factory.publish import publish
    from factory.recipe import load_recipe

    name = "journey" if journey else "plain"
    keys = [
        "source.kind=file",
        f"source.path={problems}",
        "source.id_field=id",
        "source.limit=null",
    ]
    if journey:
        keys += [
            "teacher.n=4",
            "teacher.solver_error_rate=0.25",
            "journey.enabled=true",
            "journey.share=0.3",
        ]
    manifest = run_recipe(load_recipe("arith-solver", keys), work / f"run-{name}")
    folder = work / f"data-{name}"
    publish([work / f"run-{name}"], folder)
    rows = manifest["rows"]["traces"]
    return folder, {
        "rows": rows,
        "selection": manifest.get("selection"),
        "funnel": manifest["funnel"],
    }


def _eval(model: str, work: Path, tag: str, eval_n: int, max_new_tokens: int, cache) -> dict:
    from factory.eval import evaluate

    result = evaluate(
        model,
        "eval-arith",
        [
            *([f"teacher.cache_dir={cache}"] if cache else []),
            f"source.limit={eval_n}",
            "teacher.temperature=0",
            f"teacher.max_new_tokens={max_new_tokens}",
            "teacher.batch_size=50",
        ],
        k=1,
        out=work / f"eval-{tag}",
    )
    m = result["metrics"]
    ci = m["ci"].get("pass@1_wilson") or m["ci"]["pass@1"]
    return {"pass@1": m["pass@1"], "ci": ci, "problems": m["problems"]}


def _train(data: Path, work: Path, tag: str, steps: int, batch: int, cache) -> dict:
    from factory.train import train
    from factory.train_recipe import load_train_recipe

    recipe = load_train_recipe(
        "distill-smol",
        [
            *([f"train.cache_dir={cache}"] if cache else []),
            f"train.datasets=[{{path: {data}, weight: 1}}]",
            f"train.max_steps={steps}",
            f"train.per_device_batch_size={batch}",
            "train.gradient_accumulation_steps=1",
            "train.learning_rate=2.0e-4",
            "train.warmup_ratio=0.05",
            f"train.save_steps={max(steps, 1)}",
            f"train.logging_steps={max(1, steps // 5)}",
            f"train.output_dir={work / f'student-{tag}'}",
        ],
    )
    return train(recipe)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-problems", type=int, default=2000)
    ap.add_argument("--eval-problems", type=int, default=200)
    ap.add_argument("--steps", type=int, default=150, help="optimizer steps per student")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--work", type=Path, default=REPO / "runs" / "bench-distill")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: test the mechanics")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--cache-dir", help="converted-model cache (default ~/.cache/factory/models)")
    args = ap.parse_args()
    if args.quick:
        args.train_problems, args.eval_problems, args.steps, args.batch = 40, 6, 2, 2
        args.max_new_tokens = 24
    args.work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        times[name] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        print(f"[{name}] {times[name]} s", flush=True)

    n_train, overlap = _problems_file(
        args.work / "problems.jsonl", args.train_problems, args.eval_problems
    )
    plain, plain_info = _data(args.work, args.work / "problems.jsonl", journey=False)
    journey, journey_info = _data(args.work, args.work / "problems.jsonl", journey=True)
    lap("data")
    cache = args.cache_dir
    before = _eval(
        "smollm2-135m-instruct", args.work, "before", args.eval_problems, args.max_new_tokens, cache
    )
    lap("eval before")
    train_plain = _train(plain, args.work, "plain", args.steps, args.batch, cache)
    lap("train plain")
    after_plain = _eval(
        train_plain["output_dir"],
        args.work,
        "plain",
        args.eval_problems,
        args.max_new_tokens,
        cache,
    )
    lap("eval plain")
    train_journey = _train(journey, args.work, "journey", args.steps, args.batch, cache)
    lap("train journey")
    after_journey = _eval(
        train_journey["output_dir"],
        args.work,
        "journey",
        args.eval_problems,
        args.max_new_tokens,
        cache,
    )
    lap("eval journey")

    results = {
        "train_problems": n_train,
        "held_out_overlap_removed": overlap,
        "eval_problems": before["problems"],
        "steps": args.steps,
        "batch": args.batch,
        "data": {"plain": plain_info, "journey": journey_info},
        "before": before,
        "after_plain": after_plain,
        "after_journey": after_journey,
        "train": {"plain": train_plain, "journey": train_journey},
        "seconds": times,
        "total_seconds": round(sum(times.values()), 1),
    }
    print()
    print(f"held-out eval-arith: {before['problems']} problems, greedy, pass@1 [95% Wilson CI]")
    for name, r in (
        ("before (SmolLM2-135M-Instruct)", before),
        ("after plain traces", after_plain),
        ("after plain + journey", after_journey),
    ):
        print(f"  {name:32s} {r['pass@1']:.3f} [{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")
    print(f"  gain (plain - before)            {after_plain['pass@1'] - before['pass@1']:+.3f}")
    print(
        f"  journey - plain (same steps)     {after_journey['pass@1'] - after_plain['pass@1']:+.3f}"
    )
    print(
        f"  loss plain {train_plain['first_loss']} -> {train_plain['last_loss']}, "
        f"journey {train_journey['first_loss']} -> {train_journey['last_loss']}"
    )
    print(f"  total {results['total_seconds']} s: {times}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
