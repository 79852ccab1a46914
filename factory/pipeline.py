"""`factory run`: problems → prompt → teacher → parse → verify → dedup → parquet shards.

Read top to bottom: open the run directory (lock), check the source and load the teacher
(fail fast, before any work), chain the stages, stream records into the shard writers,
publish the shards by atomic rename, and write the manifest last.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import factory
from factory.generate import Generate
from factory.problems import check_source, load_problems
from factory.progress import RunProgress
from factory.prompt import PromptBuilder
from factory.recipe import DedupLevel, Recipe, data_path
from factory.record import Record, arrow_schema
from factory.rounds import Rounds
from factory.stage import Drop, Stage, StageStats, chain
from factory.storage.generations import GenerationStore
from factory.storage.rundir import RunDir
from factory.storage.shards import ShardWriter
from factory.teachers import Teacher, load_teacher
from factory.traces import Traces
from filters.dedup import Dedup
from filters.has_gold import HasGold
from filters.majority_label import MajorityLabel
from filters.parse_answer import ParseAnswer
from filters.rejection_sampling import Select
from filters.verify import Verify, build_checkers

log = logging.getLogger(__name__)

REJECT_COLUMNS = {"stage": "string", "drop_reason": "string"}
PROBLEM_COLUMNS = ("problem_id", "source", "problem", "gold", "meta")


def new_run_id(recipe: Recipe) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{recipe.name}-{stamp}-{secrets.token_hex(2)}"


def dedup_stages(recipe: Recipe, level: str, workdir: Path | None) -> list[Stage]:
    cfg: DedupLevel = getattr(recipe.dedup, level)
    if not (cfg.exact or cfg.near):
        return []
    return [Dedup(cfg, level, recipe.dedup, workdir)]


def quality_stages(recipe: Recipe) -> list[Stage]:
    """The optional format and quality filters, in the order they run (cheap first)."""
    f = recipe.filters
    stages: list[Stage] = []
    if f.think_format.enabled:
        from filters.think_format import ThinkFormat

        stages.append(ThinkFormat(f.think_format))
    if f.length.enabled:
        from filters.length import LengthBounds

        stages.append(LengthBounds(f.length))
    if f.repetition.enabled:
        from filters.repetition import Repetition

        stages.append(Repetition(f.repetition))
    if f.language.enabled:
        from filters.language import LanguageConsistency

        stages.append(LanguageConsistency(f.language))
    return stages


def build_stages(recipe: Recipe, generate: Stage, workdir: Path | None = None) -> list[Stage]:
    """The pipeline as a plain list of steps; `generate` is the teacher (or, for reverify,
    the stage that turns existing traces into samples). Barriers spill into `workdir`.

    With adaptive sampling the teacher and the checks run inside one `Rounds` step (the next
    round needs the verdicts of the last); `flat_stages` lists them one by one."""
    reverify = bool(recipe.source.completion_field)  # traces of one problem share its text
    contamination = decontamination_stages(recipe)
    select = recipe.select
    majority = (
        [MajorityLabel(select.majority_vote, workdir)] if select.majority_vote.enabled else []
    )
    parse = ParseAnswer(recipe.parse)
    verify = Verify(build_checkers(recipe), recipe.verify.policy)
    checks = [parse, *quality_stages(recipe), *majority, verify]
    if select.enabled and select.adaptive.enabled and isinstance(generate, Generate):
        sampling: list[Stage] = [Rounds(generate, checks, select.k, select.adaptive.max_samples)]
    else:
        sampling = [generate, *checks]
    return [
        *([] if majority else [HasGold()]),  # a majority vote labels problems without gold
        *([] if reverify else dedup_stages(recipe, "problems", workdir)),
        *contamination["problems"],
        *sampling,
        *contamination["traces"],
        *dedup_stages(recipe, "traces", workdir),
        *([Select(select, workdir)] if select.enabled else []),
        *journey_stages(recipe, parse, verify),
    ]


def journey_stages(recipe: Recipe, parse: ParseAnswer, verify: Verify) -> list[Stage]:
    if not recipe.journey.enabled:
        return []
    from filters.journey import Journey, load_bridges

    bridges = load_bridges(recipe.journey_bridges_text(), recipe.journey.bridges)
    return [Journey(recipe.journey, bridges, parse, verify)]


def flat_stages(stages: list[Stage]) -> list[Stage]:
    """Every step once, in order, with the inner steps of a `Rounds` in its place."""
    return [inner for s in stages for inner in (s.inner if isinstance(s, Rounds) else [s])]


def selection_report(stages: list[Stage]) -> dict[str, Any] | None:
    """Rejection sampling, adaptive rounds, majority votes and journeys, when the recipe uses
    them (the manifest's `selection`)."""
    report: dict[str, Any] = {}
    for stage in stages:
        if isinstance(stage, Rounds):
            report["adaptive"] = stage.report()
        elif isinstance(stage, Select) or stage.name == "journey":
            report[stage.name] = stage.report()
    for stage in flat_stages(stages):
        if isinstance(stage, MajorityLabel):
            report[stage.name] = stage.report()
    return report or None


def decontamination_stages(recipe: Recipe) -> dict[str, list[Stage]]:
    """Problems are checked before generation (no teacher time on a leaked item), traces
    after verification; one benchmark index serves both."""
    cfg = recipe.decontaminate
    if not cfg.enabled:
        return {"problems": [], "traces": []}
    from filters.decontaminate import BenchmarkIndex, Decontaminate

    index = BenchmarkIndex(cfg.n)
    for b in cfg.benchmarks:
        index.add_file(b.name, data_path(b.path), b.text_field, b.id_field)
    return {
        "problems": [Decontaminate(index, ["problem"], "problems")] if cfg.problems else [],
        "traces": [Decontaminate(index, ["completion"], "traces")] if cfg.traces else [],
    }


def decontamination_report(recipe: Recipe, stages: list[Stage]) -> dict[str, Any] | None:
    found = [s for s in stages if s.name.startswith("decontaminate_")]
    if not found:
        return None
    return {
        "n": recipe.decontaminate.n,
        "benchmarks": dict(found[0].index.items),
        **{s.name.removeprefix("decontaminate_"): s.report() for s in found},
    }


def funnel(source: StageStats, stages: list[Stage], kept: int) -> dict[str, int]:
    stages = flat_stages(stages)
    by_name = {s.name: s.stats for s in stages}
    by_name.setdefault("generate", by_name.get("traces"))  # reverify: traces read, not generated
    verified = by_name["verify"].outputs
    trace_dedup = [s.stats for s in stages if s.name.startswith("dedup_traces")]
    return {
        "problems": source.outputs,
        "generated": by_name["generate"].outputs,
        "parsed": by_name["parse"].outputs,
        "verified": verified,
        "deduped": trace_dedup[-1].outputs if trace_dedup else verified,
        "kept": kept,
    }


def _tee(records: Iterable[Record], writer: ShardWriter, kind: str) -> Iterator[Record]:
    for record in records:
        record.kind = kind  # `output.kind`: every sample of the problem inherits it
        writer.add({k: v for k, v in record.row().items() if k in PROBLEM_COLUMNS})
        yield record


def open_writers(
    rundir: RunDir, run_id: str, recipe: Recipe, fingerprint: str
) -> tuple[ShardWriter, ShardWriter, ShardWriter]:
    """The traces, rejects and problems tables of a new version `run_id` of `rundir`."""
    version = rundir.version_dir(run_id)
    constants = {"recipe": recipe.name, "recipe_fingerprint": fingerprint, "run_id": run_id}
    shard = {"shard_rows": recipe.output.shard_rows, "compression": recipe.output.compression}
    schema = arrow_schema()
    traces = ShardWriter(
        version, rundir.staging, "data", "train", schema, constants=constants, **shard
    )
    rejects = ShardWriter(
        version,
        rundir.staging,
        "rejects",
        "rejects",
        arrow_schema(REJECT_COLUMNS),
        constants=constants,
        **shard,
    )
    problems = ShardWriter(
        version, rundir.staging, "problems", "problems", _problem_schema(schema), **shard
    )
    return traces, rejects, problems


def default_out(recipe: Recipe, rank: int = 0, world_size: int = 1) -> Path:
    """Same teacher and prompts → same folder, so rerunning a command resumes it; each shard of
    a data-parallel run has its own folder."""
    shard = f"-rank{rank}of{world_size}" if world_size > 1 else ""
    # re-verifying: what identifies the run is the input and the checks, not a teacher
    fp = recipe.fingerprint() if recipe.source.completion_field else recipe.generation_fingerprint()
    return Path("runs") / f"{recipe.name}-{fp}{shard}"


def run_recipe(
    recipe: Recipe,
    out: Path,
    rank: int = 0,
    world_size: int = 1,
    teacher: Teacher | None = None,
    retry_failed: bool = False,
    repair: bool = False,
    console=None,
) -> dict[str, Any]:
    """Run `recipe` into the run directory `out`; returns the manifest it wrote (or found).

    `console` (a rich Console) shows a live progress bar when it is a terminal; without one,
    progress goes to the log every few seconds.
    A finished run of the same recipe is returned as it is (nothing is requested or written);
    otherwise stored samples are reused, only missing ones are requested, and the downstream
    stages run again over all of them.
    """
    if teacher is not None and teacher.model_name != recipe.teacher.model:
        raise ValueError(
            f"teacher {teacher.model_name!r} is not the recipe's {recipe.teacher.model!r}"
        )
    started = time.time()
    fingerprint, gen_fingerprint = recipe.fingerprint(), recipe.generation_fingerprint()
    with RunDir(out) as rundir:
        previous = rundir.manifest()
        if _up_to_date(previous, recipe, retry_failed, (rank, world_size)):
            log.info("%s is up to date (recipe %s): nothing to do", out, fingerprint)
            return {**previous, "up_to_date": True}  # the flag is for the caller, not the file
        run_id = new_run_id(recipe)
        # ---- fail fast on the source before any generation ----------------------------------
        expected = check_source(recipe.source)
        log.info("source ok: %d problems (%s)", expected, recipe.source.kind)
        store = GenerationStore(
            out / "generations" / gen_fingerprint, recipe.output.seal_rows, repair
        ).open()
        if store.samples:
            log.info("resuming: %d samples already generated", len(store.samples))
        load_seconds = 0.0

        def load() -> Teacher:
            nonlocal load_seconds
            t0 = time.time()
            loaded = teacher or load_teacher(recipe.teacher)
            load_seconds = time.time() - t0
            log.info("teacher %s ready in %.1fs", recipe.teacher.model, load_seconds)
            return loaded

        # ---- writers (into a new version; published by symlink swap at the end) -------------
        traces, rejects, problems = open_writers(rundir, run_id, recipe, fingerprint)

        observers = []  # barriers that must also see the samples dropped before them

        def on_drop(record: Record, stage: str, drop: Drop) -> None:
            row = record.row()
            if drop.cluster is not None:
                row["dedup_cluster"] = drop.cluster
            rejects.add({**row, "stage": stage, "drop_reason": drop.reason})
            for observer in observers:
                observer(record, stage, drop)

        # ---- stream ---------------------------------------------------------------------------
        prompts = PromptBuilder.from_recipe(recipe)
        generate: Generate | Traces
        if recipe.source.completion_field:  # re-verifying existing traces: no teacher
            generate = Traces(prompts)
        else:
            generate = Generate(
                load,
                recipe.teacher,
                prompts,
                gen_fingerprint,
                store,
                retry_failed,
                recipe.price(),
                recipe.budget_usd,
            )
        stages = build_stages(recipe, generate, out / ".work")
        observers.extend(s.observe_drop for s in stages if hasattr(s, "observe_drop"))
        source = _tee(load_problems(recipe.source, rank, world_size), problems, recipe.output.kind)
        stream, source_stats = chain(source, stages, on_drop, rank, world_size)
        tokens = {"prompt": 0, "completion": 0}
        per_problem = 1 if recipe.source.completion_field else recipe.teacher.n  # reverify: one
        expected_new = max(0, expected * per_problem // world_size - len(store.samples))
        every = flat_stages(stages)
        downstream = every[every.index(generate) + 1 :]

        def acceptance() -> float | None:  # kept / samples that have passed every stage so far
            settled = traces.total + sum(sum(st.stats.drops.values()) for st in downstream)
            return traces.total / settled if settled else None

        generate.progress = RunProgress(expected_new, acceptance, console)
        try:
            with generate.progress:
                for record in stream:
                    traces.add(record.row())
                    tokens["prompt"] += record.prompt_tokens or 0
                    tokens["completion"] += record.completion_tokens or 0
            store.seal()
        finally:
            store.close()  # flush and fsync the journal, also on Ctrl-C / SIGTERM
            for stage in flat_stages(stages):
                if stage is not generate or teacher is None:  # a borrowed teacher stays open
                    stage.close()

        # ---- publish and seal ------------------------------------------------------------
        files = {
            "traces": traces.publish(),
            "rejects": rejects.publish(),
            "problems": problems.publish(),
        }
        manifest = {
            "run_id": run_id,
            "factory_version": factory.__version__,
            "recipe_name": recipe.name,
            "recipe_fingerprint": fingerprint,
            "generation_fingerprint": gen_fingerprint,
            "recipe": recipe.to_dict(),
            "rank": rank,
            "world_size": world_size,
            "started_at": _iso(started),
            "finished_at": _iso(time.time()),
            "seconds": round(time.time() - started, 2),
            "teacher": {
                # re-verifying existing traces asks no teacher
                "backend": "none (reverify)"
                if recipe.source.completion_field
                else recipe.teacher.backend,
                "model": None if recipe.source.completion_field else recipe.teacher.model,
                "load_seconds": round(load_seconds, 2),
                "generate_seconds": round(generate.seconds_in_teacher, 2),  # model load excluded
                "requested": generate.requested,
                "reused": generate.reused,
                "failed": generate.failed,
                "prompt_tokens": generate.prompt_tokens,
                "completion_tokens": generate.completion_tokens,
                "completion_tokens_per_s": round(
                    generate.completion_tokens / max(generate.seconds_in_teacher, 1e-9), 2
                ),
            },
            # every stored sample once, however many attempts it took: never double counted
            "samples": {
                "total": len(store.samples),
                "prompt_tokens": sum(r.prompt_tokens or 0 for r in store.samples.values()),
                "completion_tokens": sum(r.completion_tokens or 0 for r in store.samples.values()),
                "tombstones": len(set(store.failures) - set(store.samples)),
                # handed to the teacher in an earlier attempt that ended (crash, signal, budget)
                # before the result was stored: asked again, paid for twice by a hosted API
                "wasted_requests": store.wasted,
            },
            "cost": _cost(recipe, generate, traces.total),
            "funnel": funnel(source_stats, stages, traces.total),
            "decontamination": decontamination_report(recipe, stages),
            "dedup": {
                s.name.removeprefix("dedup_"): s.report() for s in stages if isinstance(s, Dedup)
            },
            "selection": selection_report(stages),
            "stages": [source_stats.as_dict()] + [s.stats.as_dict() for s in flat_stages(stages)],
            "tokens_kept": tokens,
            "rows": {"traces": traces.total, "rejects": rejects.total, "problems": problems.total},
            "files": files,
        }
        rundir.publish(run_id, manifest)
    return manifest


def _up_to_date(
    previous: dict[str, Any] | None, recipe: Recipe, retry_failed: bool, shard: tuple[int, int]
) -> bool:
    if previous is None or previous.get("recipe_fingerprint") != recipe.fingerprint():
        return False
    if (previous.get("rank", 0), previous.get("world_size", 1)) != shard:
        return False  # another shard of the problems: run it
    cost = previous.get("cost", {})
    if cost.get("budget_exhausted") and cost.get("budget_usd") != recipe.budget_usd:
        return False  # stopped by a budget that has changed since: go on
    return not (retry_failed and previous["teacher"].get("failed"))


def _cost(recipe: Recipe, generate: Generate, kept: int) -> dict[str, Any]:
    total = generate.cost_stored + generate.cost_new
    return {
        "currency": "USD",
        "price_per_mtok": {
            "prompt": recipe.price().prompt,
            "completion": recipe.price().completion,
        },
        "this_run": round(generate.cost_new, 6),
        "all_samples": round(total, 6),
        "per_kept_trace": round(total / kept, 6) if kept else None,
        "budget_usd": recipe.budget_usd,
        "budget_exhausted": generate.budget_exhausted,
    }


def _problem_schema(trace_schema):
    import pyarrow as pa

    return pa.schema([trace_schema.field(name) for name in PROBLEM_COLUMNS])


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")
