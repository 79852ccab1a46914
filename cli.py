"""The `factory` command. Thin on purpose: parse, load the recipe, call one library function.

Heavy libraries are imported inside the commands, so `factory --help` answers instantly.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="factory: synthetic reasoning data from a teacher model, verified and deduplicated.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _setup_logging(verbose: bool, console=None) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    if console is not None and console.is_terminal:
        from rich.logging import RichHandler  # shares the console with the live progress bar

        logging.basicConfig(
            level=level, format="%(message)s", handlers=[RichHandler(console=console)]
        )
    else:
        logging.basicConfig(
            level=level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
        )
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "transformers", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _split_args(args: list[str]) -> tuple[str, list[str]]:
    from factory.errors import RecipeError

    recipe, overrides = None, []
    for arg in args:
        if arg.startswith("recipe="):
            recipe = arg.partition("=")[2]
        else:
            overrides.append(arg)
    if not recipe:
        raise RecipeError(
            "name a recipe: factory run recipe=NAME [key=value ...] (see `factory recipes`)"
        )
    return recipe, overrides


class Terminated(Exception):
    """SIGTERM, raised in the main thread so that `finally` blocks flush the journal."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated()


@app.command(context_settings={"allow_extra_args": False})
def run(
    args: Annotated[
        list[str] | None, typer.Argument(help="recipe=NAME then key=value overrides")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="run directory (default: runs/<recipe>-<generation fingerprint>)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print the resolved recipe and stop")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="ask again for samples whose retries ran out")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="set damaged sealed shards aside and regenerate their samples"
        ),
    ] = False,
    rank: Annotated[
        int, typer.Option(help="this shard's number (data parallel: one process per replica)")
    ] = 0,
    world_size: Annotated[
        int, typer.Option(help="number of shards; problem i belongs to rank i % world-size")
    ] = 1,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run a recipe: factory run recipe=math-cot teacher.temperature=0.6

    Rerunning the same command resumes: samples already generated are never asked for again."""
    import signal

    from factory.errors import FactoryError
    from factory.recipe import load_recipe

    try:
        name, overrides = _split_args(args or [])
        from factory.mix_recipe import is_mix_recipe
        from factory.train_recipe import is_train_recipe

        if is_train_recipe(name):
            raise FactoryError(
                f"recipe {name} is a train recipe (top-level `train:`): run it with "
                f"`factory train recipe={name}`"
            )
        if is_mix_recipe(name):  # a top-level `mix:`: compose finished runs, no teacher
            if rank or world_size != 1 or retry_failed or repair:
                raise FactoryError(
                    f"recipe {name} is a mix recipe: --rank, --world-size, --retry-failed "
                    "and --repair are for run recipes"
                )
            return _run_mix(name, overrides, out, dry_run, verbose)
        recipe = load_recipe(name, overrides)
        if world_size < 1 or not 0 <= rank < world_size:
            raise FactoryError(
                f"--rank {rank} --world-size {world_size}: need world-size >= 1 and "
                "0 <= rank < world-size"
            )
    except FactoryError as exc:
        _fail(exc)
    if dry_run:
        import yaml

        typer.echo(yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True), nl=False)
        typer.echo(f"# fingerprint: {recipe.fingerprint()}")
        typer.echo(f"# generation fingerprint: {recipe.generation_fingerprint()}")
        return
    from rich.console import Console

    from factory.display import console, funnel_table
    from factory.pipeline import default_out, run_recipe

    progress_console = Console(stderr=True)
    _setup_logging(verbose, progress_console)

    out = out or default_out(recipe, rank, world_size)
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        manifest = run_recipe(
            recipe,
            out,
            rank,
            world_size,
            retry_failed=retry_failed,
            repair=repair,
            console=progress_console,
        )
    except FactoryError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo(
            f"interrupted: samples so far are saved; rerun the same command to resume ({out})",
            err=True,
        )
        raise typer.Exit(130) from None
    except OSError as exc:  # disk full, permissions: what is journaled is safe
        typer.echo(
            f"error: {exc}. Samples so far are saved; fix this and rerun the same command "
            f"to resume ({out})",
            err=True,
        )
        raise typer.Exit(1) from None
    except Terminated:
        typer.echo(
            f"terminated: samples so far are saved; rerun the same command to resume ({out})",
            err=True,
        )
        raise typer.Exit(143) from None
    console.print(funnel_table(manifest["funnel"]))
    t = manifest["teacher"]
    if manifest.get("up_to_date"):
        typer.echo("samples: 0 requested (up to date: this recipe already ran here)")
    else:
        typer.echo(
            f"samples: {t['requested']} requested, {t['reused']} reused, {t['failed']} failed"
        )
    typer.echo(f"run directory: {out}")
    typer.echo(f'next: factory stats {out}   |   factory query {out} "SELECT * FROM traces"')


def _run_mix(name: str, overrides: list[str], out: Path | None, dry_run: bool, verbose: bool):
    """`factory run` of a mix recipe: pick rows of finished runs into one run directory."""
    from factory.errors import FactoryError
    from factory.mix_recipe import load_mix_recipe

    try:
        recipe = load_mix_recipe(name, overrides)
    except FactoryError as exc:
        _fail(exc)
    if dry_run:
        import yaml

        typer.echo(yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True), nl=False)
        typer.echo(f"# fingerprint: {recipe.fingerprint()}")
        targets = ", ".join(f"{k} {v}" for k, v in recipe.mix.targets().items())
        typer.echo(f"# targets ({recipe.mix.unit}): {targets}")
        return
    from factory.display import console, table
    from factory.mix import default_mix_out, report_rows, run_mix

    _setup_logging(verbose)
    out = out or default_mix_out(recipe)
    try:
        manifest = run_mix(recipe, out)
    except FactoryError as exc:
        _fail(exc)
    title, columns, rows = report_rows(manifest)
    console.print(table(title, columns, rows))
    short = [b for b in manifest["mix"]["buckets"] if b["shortfall"]]
    for b in short:
        typer.echo(
            f"shortfall: bucket {b['name']} has {b['achieved']} of {b['target']} "
            f"{manifest['mix']['unit']} (only {b['available']} available); no row is repeated"
        )
    if manifest.get("up_to_date"):
        typer.echo("up to date: this mix of these inputs is already here")
    typer.echo(f"rows: {manifest['rows']['traces']} kept, {manifest['rows']['rejects']} too long")
    typer.echo(f"run directory: {out}")
    typer.echo(f"next: factory stats {out}   |   factory publish {out} --to datasets/{recipe.name}")


@app.command()
def query(
    args: Annotated[
        list[str],
        typer.Argument(
            help="run directories and published folders (paths or globs), then the SQL",
            metavar="PATH... SQL",
        ),
    ],
    format: Annotated[str, typer.Option("--format", "-f", help="table | csv | json")] = "table",
    db: Annotated[
        Path | None,
        typer.Option("--db", help="write the views into this DuckDB file (the SQL is optional)"),
    ] = None,
) -> None:
    """SQL (DuckDB) over runs and published folders (paths or globs): views runs, traces,
    rejects, problems, verdicts, clusters, contamination, costs (README: Warehouse).
    --db FILE writes them into a DuckDB file: factory query 'runs/math-*' --db w.duckdb"""
    from factory.errors import FactoryError

    if format not in ("table", "csv", "json"):
        _fail(ValueError(f"--format: bad value {format!r} (allowed: table, csv, json)"))
    paths, sql = _split_query_args(args, db is not None)
    import duckdb

    from factory.query import query as run_query

    try:
        columns, rows = run_query(paths, sql or "SELECT count(*) FROM runs", db)
    except (FactoryError, duckdb.Error) as exc:
        _fail(exc)
    if sql is None:
        from factory.warehouse import VIEWS

        typer.echo(f"catalog: {db} ({rows[0][0]} run(s); views {', '.join(VIEWS)})")
        return
    if format == "table":
        from factory.display import console, table

        console.print(table(None, columns, rows))
    else:
        from factory.query import render

        typer.echo(render(columns, rows, format), nl=False)


def _split_query_args(args: list[str], catalog: bool) -> tuple[list[str], str | None]:
    """(paths, SQL): the SQL is the last argument; with --db it may be left out (the last
    argument is then a path: an existing one, or a glob that matches)."""
    import glob

    last = args[-1]
    if catalog and (Path(last).exists() or (glob.has_magic(last) and glob.glob(last))):
        return args, None
    if len(args) < 2:
        _fail(ValueError('name the runs and then the SQL: factory query PATH... "SELECT ..."'))
    return args[:-1], last


@app.command()
def stats(run_dir: Annotated[Path, typer.Argument(help="a finished run directory")]) -> None:
    """The funnel, acceptance by source, drop reasons, tokens and time per stage."""
    from factory.display import show_stats
    from factory.errors import FactoryError
    from factory.stats import run_stats

    try:
        show_stats(run_stats(run_dir))
    except FactoryError as exc:
        _fail(exc)


@app.command()
def dedup(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    settings: Annotated[
        list[str] | None, typer.Argument(help="dedup.* overrides, e.g. dedup.traces.threshold=0.8")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Dedup a finished run's traces again (other threshold, fields, policy); publishes a new
    version of the run: factory dedup runs/x dedup.traces.threshold=0.8"""
    from factory.dedup_run import dedup_run
    from factory.errors import FactoryError

    _setup_logging(verbose)
    try:
        m = dedup_run(run_dir, settings or [])
    except FactoryError as exc:
        _fail(exc)
    report, before = m["dedup"]["traces"], m["rededup_of"]
    drops = report["drops"]
    typer.echo(
        f"traces considered: {report['rows']} ({before['kept']} kept before, "
        f"{before['earlier_duplicates']} earlier duplicates)"
    )
    typer.echo(
        f"kept: {m['rows']['traces']}; duplicates: {drops.get('duplicate_exact', 0)} exact, "
        f"{drops.get('duplicate_near', 0)} near; clusters: {report['clusters']}, "
        f"largest {report['largest_cluster']}"
    )
    typer.echo(f"run directory: {run_dir} (new version {m['run_id']})")


@app.command()
def publish(
    run_dirs: Annotated[list[Path], typer.Argument(help="finished run directories, in order")],
    to: Annotated[Path, typer.Option("--to", help="the dataset folder to write (or replace)")],
    push_to_hub: Annotated[
        str | None,
        typer.Option("--push-to-hub", help="also upload the folder to this Hub dataset repo"),
    ] = None,
    license: Annotated[str, typer.Option(help="license id for the dataset card")] = "other",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Write finished runs as one Hugging Face dataset folder (parquet shards + dataset card):
    factory publish runs/a runs/b --to datasets/mix"""
    from factory.errors import FactoryError
    from factory.publish import publish as publish_runs
    from factory.publish import push_to_hub as push

    _setup_logging(verbose)
    try:
        done = publish_runs(run_dirs, to, license=license)
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(done.skipped.items()))
        typer.echo(
            f"published: {done.rows} rows in {done.shards} shard(s) to {done.folder}"
            + (f" (skipped: {sum(done.skipped.values())}: {skipped})" if skipped else "")
        )
        if push_to_hub:
            typer.echo(f"pushed: {push(done.folder, push_to_hub)}")
    except FactoryError as exc:
        _fail(exc)


@app.command(name="eval", context_settings={"allow_extra_args": False})
def eval_(
    args: Annotated[
        list[str] | None,
        typer.Argument(help="MODEL (checkpoint folder, alias or model id), recipe=NAME, key=value"),
    ] = None,
    k: Annotated[int, typer.Option("--k", help="samples per problem (pass@k, maj@k)")] = 4,
    out: Annotated[Path | None, typer.Option(help="eval run directory")] = None,
    compare: Annotated[
        tuple[Path, Path] | None,
        typer.Option(help="two checkpoints / scores.json / eval run dirs, side by side"),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Score a model on held-out problems with the verifiers that built the data:
    factory eval runs/train/x recipe=eval-gsm8k --k 4   |   factory eval --compare A B"""
    from factory.errors import FactoryError

    words = list(args or [])
    recipe = next((w.partition("=")[2] for w in words if w.startswith("recipe=")), None)
    try:
        if compare is not None:
            from factory.eval import compare as compare_evals

            rows = compare_evals(compare[0], compare[1], recipe=recipe)
            _print_compare(rows, compare)
            return
        models = [w for w in words if "=" not in w]
        if len(models) != 1 or recipe is None:
            raise FactoryError(
                "usage: factory eval MODEL recipe=NAME [key=value ...] [--k K] "
                "(e.g. factory eval runs/train/distill-smol recipe=eval-arith --k 4)"
            )
        from factory.eval import evaluate

        _setup_logging(verbose)
        overrides = [w for w in words if "=" in w and not w.startswith("recipe=")]
        result = evaluate(models[0], recipe, overrides, k=k, out=out)
    except FactoryError as exc:
        _fail(exc)
    _print_scores(result)


def _ci(value: float, ci) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else f"{value:.3f}"


def _print_scores(result: dict) -> None:
    from factory.display import console, table

    m = result["metrics"]
    names = [n for n in m["ci"] if not n.endswith("_wilson")]
    rows = [(n, _ci(m[n], m["ci"][n])) for n in names]
    console.print(table("scores (95% CI, bootstrap over problems)", ["metric", "value"], rows))
    typer.echo(f"problems: {m['problems']}, samples per problem: {m['samples_per_problem']}")
    dropped = result.get("outcomes", {}).get("dropped_before_verify") or {}
    if dropped:
        typer.echo(
            "dropped before verification (counted wrong): "
            + ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
        )
    typer.echo(f"scores: {result['scores_path']}")


def _print_compare(rows, paths) -> None:
    from factory.display import console, table

    columns = ["metric", f"A: {paths[0]}", f"B: {paths[1]}", "delta (B - A)", "CIs overlap"]
    console.print(
        table(
            "compare",
            columns,
            [
                (
                    r.metric,
                    _ci(r.a, r.a_ci),
                    _ci(r.b, r.b_ci),
                    f"{r.delta:+.3f}",
                    "yes" if r.ci_overlap else "no",
                )
                for r in rows
            ],
        )
    )


@app.command(context_settings={"allow_extra_args": False})
def train(
    args: Annotated[
        list[str] | None, typer.Argument(help="recipe=NAME then key=value overrides")
    ] = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="start over even if a checkpoint exists")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Fine-tune a student with TRL on published folders or run directories, after lint:
    factory train recipe=distill-smol train.max_steps=20"""
    import json

    from factory.errors import FactoryError

    try:
        name, overrides = _split_args(args or [])
        from factory.train import train as run_training
        from factory.train_recipe import load_train_recipe

        recipe = load_train_recipe(name, overrides)
        _setup_logging(verbose)
        summary = run_training(recipe, resume=not no_resume)
    except FactoryError as exc:
        _fail(exc)
    typer.echo(json.dumps(summary, indent=2, default=str))
    typer.echo(f"next: factory eval {summary['output_dir']} recipe=<an eval-* recipe> --k 4")


@app.command()
def lint(
    datasets: Annotated[
        list[Path], typer.Argument(help="published folders or run directories (messages column)")
    ],
    model: Annotated[str, typer.Option(help="tokenizer: model folder, alias or cached id")],
    chat_template: Annotated[
        Path | None, typer.Option(help="template file that replaces the tokenizer's")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="the max_length you will train with (TRL default 1024)")
    ] = None,
    pad_token: Annotated[
        str | None, typer.Option(help="pad token to set (e.g. '<|endoftext|>' for SmolLM2)")
    ] = None,
) -> None:
    """Pre-flight checks of data + tokenizer + template before any GPU time: EOS vs pad, loss
    mask, think tags, reasoning kept by the template, lengths. Exit 1 on a hard failure."""
    from factory.display import console, table
    from factory.errors import FactoryError

    try:
        from factory.lint import lint_conversations, load_tokenizer
        from factory.sft_data import load_sft_dataset
        from factory.train_recipe import DatasetSpec

        conversations, ids = [], []
        for folder in datasets:  # each input whole and once (no mixing by weight here)
            data, info = load_sft_dataset([DatasetSpec(path=str(folder))])
            conversations += data["messages"]
            ids += info.ids
        tokenizer = load_tokenizer(model, chat_template, pad_token=pad_token)
        report = lint_conversations(conversations, tokenizer, max_length=max_length, ids=ids)
    except FactoryError as exc:
        _fail(exc)
    rows = [
        (f.severity, f.check, f.count, ", ".join(f.examples[:3]), f.message)
        for f in report.findings
    ]
    if rows:
        console.print(
            table("lint", ["severity", "check", "samples", "e.g.", "problem and fix"], rows)
        )
    lengths = report.lengths
    typer.echo(
        f"{report.samples} samples; tokens p50 {lengths.get('p50')} p95 {lengths.get('p95')} "
        f"max {lengths.get('max')}; suggested max_length {report.suggested_max_length}"
    )
    if not report.ok:
        typer.echo(f"lint: {len(report.errors())} hard failure(s): factory train would refuse")
        raise typer.Exit(1)
    typer.echo("lint: ok")


@app.command()
def show(
    run_dir: Annotated[Path, typer.Argument(help="a finished run directory")],
    id: Annotated[str | None, typer.Option("--id", help="one trace or reject by its id")] = None,
    where: Annotated[
        str | None, typer.Option(help="SQL predicate over the columns, e.g. \"verdict = 'fail'\"")
    ] = None,
    limit: Annotated[int, typer.Option(help="show at most this many rows")] = 10,
    fold: Annotated[int, typer.Option(help="reasoning: first and last N lines")] = 8,
    full: Annotated[bool, typer.Option("--full", help="reasoning in full, not folded")] = False,
    kept_only: Annotated[
        bool, typer.Option("--kept-only", help="kept traces only, no rejects")
    ] = False,
) -> None:
    """Pretty-print traces (kept and dropped): problem, folded reasoning, answer vs gold,
    verdicts, dedup cluster, contamination: factory show runs/x --where "verdict = 'fail'" """
    from factory.display import console
    from factory.errors import FactoryError
    from factory.inspect_traces import find_traces, render_trace

    try:
        rows = find_traces(run_dir, id=id, where=where, limit=limit, include_rejects=not kept_only)
    except FactoryError as exc:
        _fail(exc)
    for row in rows:
        console.print(render_trace(row, console.width, fold=None if full else fold))
    more = f" (the first {limit}; --limit N for more)" if id is None and len(rows) == limit else ""
    typer.echo(f"{len(rows)} row(s) shown{more}")


@app.command()
def diff(
    run_a: Annotated[Path, typer.Argument(help="run directory A")],
    run_b: Annotated[Path, typer.Argument(help="run directory B")],
) -> None:
    """Two runs side by side: funnels, acceptance, drop reasons, tokens and cost per kept
    trace, and the recipe keys that differ (deltas are B - A)."""
    from factory.diff_runs import diff_runs, diff_tables
    from factory.display import console
    from factory.errors import FactoryError

    try:
        tables = diff_tables(diff_runs(run_a, run_b))
    except FactoryError as exc:
        _fail(exc)
    for t in tables:
        console.print(t)


@app.command()
def report(
    paths: Annotated[
        list[str], typer.Argument(help="run directories and published folders (globs allowed)")
    ],
    out: Annotated[Path, typer.Option("--out", help="the HTML file to write")] = Path(
        "report.html"
    ),
) -> None:
    """A self-contained HTML quality report: funnel per stage, acceptance, lengths, drop reasons
    with examples, verifier agreement, dedup, decontamination, cost, mixes."""
    from factory.errors import FactoryError
    from factory.report import build_report

    try:
        result = build_report(paths, out)
    except FactoryError as exc:
        _fail(exc)
    typer.echo(
        f"report: {result['out']} ({result['bytes'] / 1e3:,.0f} kB, {len(result['charts'])} charts, "
        f"{result['seconds_total']:.1f} s)"
    )


@app.command()
def recipes() -> None:
    """List the recipes in recipes/ with their descriptions."""
    import yaml

    from factory.recipe import known_recipes

    for name, path in known_recipes().items():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        typer.echo(f"{name:16} {data.get('description', '')}")


if __name__ == "__main__":
    app()
