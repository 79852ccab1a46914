"""openai backend throughput: factory's whole run vs a bare asyncio loop over the openai client.

Same loopback server (a separate process, fixed latency per request to stand in for
generation), same requests, same concurrency. The bare loop only sends requests and keeps the
replies in memory; its clock starts with the client built and imported. factory runs
`run_recipe` end to end: journal every sample, seal shards, parse, verify, dedup and publish
parquet. Two ratios are printed:

  throughput  requests / the manifest's `generate_seconds` (teacher loaded → last sample
              journaled, with the downstream stages running on the stream), vs the bare loop.
              Target >= 0.9. Like the bare clock it leaves out start-up: the teacher's client
              process importing `openai`.
  end to end  requests / the whole `run_recipe` call (start-up, loading problems, publishing).

The runs alternate (bare, factory, bare, factory, ...) `--repeats` times and the medians are
compared, since one run on a shared 2-core machine varies by ±15%.

    python benchmarks/bench_openai.py [--requests 5000] [--concurrency 64] [--latency 0.02]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


async def bare(url: str, prompts: list[str], concurrency: int) -> float:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="x", max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, prompt: str):
        async with gate:
            return await client.chat.completions.create(
                model="fake", messages=[{"role": "user", "content": prompt}], max_tokens=64, seed=i
            )

    t0 = time.perf_counter()
    replies = await asyncio.gather(*(one(i, p) for i, p in enumerate(prompts)))
    seconds = time.perf_counter() - t0
    await client.close()
    assert len(replies) == len(prompts)
    return seconds


def factory_run(url: str, problems: Path, concurrency: int, out: Path) -> float:
    from factory.pipeline import run_recipe
    from factory.recipe import load_recipe

    recipe = load_recipe(
        "math-cot",
        [
            "source.kind=file",
            f"source.path={problems}",
            "source.limit=null",
            "teacher.backend=openai",
            "teacher.model=fake",
            f"teacher.base_url={url}",
            "teacher.n=1",
            f"teacher.concurrency={concurrency}",
            "teacher.max_new_tokens=64",
            "prompt.fewshot=null",
            "dedup.problems.near=false",
            "dedup.traces.near=false",
        ],
    )
    t0 = time.perf_counter()
    manifest = run_recipe(recipe, out)
    seconds = time.perf_counter() - t0
    assert manifest["samples"]["total"] == manifest["funnel"]["problems"]
    return manifest["teacher"]["generate_seconds"], seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--latency", type=float, default=0.02)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    # one-time imports are start-up cost, not throughput: load them before either clock starts
    import openai  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    import factory.pipeline  # noqa: F401
    from tests.helpers import problems_file

    server = subprocess.Popen(
        [sys.executable, "-m", "tests.factory.teachers.fault_server", str(args.latency)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = server.stdout.readline().strip()
        with tempfile.TemporaryDirectory() as tmp:
            problems = problems_file(Path(tmp) / "p.jsonl", args.requests)
            prompts = [
                line.split('"question": "')[1].split('"')[0]
                for line in problems.read_text().splitlines()
            ]
            bare_s, gen_s, e2e_s = [], [], []
            for rep in range(args.repeats):
                bare_s.append(asyncio.run(bare(url, prompts, args.concurrency)))
                gen, e2e = factory_run(url, problems, args.concurrency, Path(tmp) / f"run{rep}")
                gen_s.append(gen)
                e2e_s.append(e2e)
    finally:
        server.kill()
    n = args.requests
    b, g, e = statistics.median(bare_s), statistics.median(gen_s), statistics.median(e2e_s)
    print(f"requests={n} concurrency={args.concurrency} server latency={args.latency}s")
    print(f"medians of {args.repeats} alternating runs")
    print(f"bare asyncio loop        : {n / b:8.1f} req/s ({b:.1f} s)")
    print(f"factory generate (stream): {n / g:8.1f} req/s ({g:.1f} s, journal + shards + filters)")
    print(f"factory run_recipe       : {n / e:8.1f} req/s ({e:.1f} s, incl. start-up, publish)")
    print(f"ratio throughput factory / bare = {b / g:.2f}x (target >= 0.9)")
    print(f"ratio end to end factory / bare = {b / e:.2f}x")


if __name__ == "__main__":
    main()
