"""`factory diff A B`: two finished runs side by side — funnels, acceptance, drops, cost, recipe.

Built on `run_stats` (the numbers `factory stats` prints) and the two manifests: `diff_runs`
returns plain values with deltas as B − A, `diff_tables` turns them into rich tables. Shares are
of each run's own `generated` count; a share delta is in percentage points. The recipe part
flattens both resolved recipes to dotted keys (`dedup.traces.threshold`) and lists every key
whose value differs, so a diff says *why* two funnels differ as well as *how*.

Not covered: per-trace comparisons (which samples one run kept and the other dropped: join the
two runs' `traces` views in `factory query`), and runs of different factory versions whose
manifests lack newer blocks (missing blocks are treated as empty).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factory.stats import run_stats

MISSING = "—"  # a recipe key or table row that one run does not have


def diff_runs(a: Path, b: Path) -> dict[str, Any]:
    """The differences between runs `a` and `b` (deltas are b − a)."""
    sa, sb = run_stats(a), run_stats(b)  # each from one version of its run
    return {
        "a": {"path": str(a), "run_id": sa["run_id"], "recipe": sa["recipe"]},
        "b": {"path": str(b), "run_id": sb["run_id"], "recipe": sb["recipe"]},
        "funnel": _funnel(sa["funnel"], sb["funnel"]),
        "by_source": _by_source(sa["by_source"], sb["by_source"]),
        "drop_reasons": _drops(sa["drop_reasons"], sb["drop_reasons"]),
        "per_kept_trace": _per_kept(sa, sb),
        "recipe": {
            "fingerprint_a": sa["recipe_fingerprint"],
            "fingerprint_b": sb["recipe_fingerprint"],
            "same": sa["recipe_fingerprint"] == sb["recipe_fingerprint"],
            "changed": changed_keys(sa["resolved_recipe"], sb["resolved_recipe"]),
        },
        "dedup": _dedup(sa["dedup"], sb["dedup"]),
        "decontamination": _decontamination(sa["decontamination"], sb["decontamination"]),
        "selection": _selection(sa["selection"], sb["selection"]),
    }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys; lists and scalars are leaves."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    for k, v in value.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


def changed_keys(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Recipe keys whose values differ, sorted, as `{key, a, b}`; a key only one recipe has
    gets `MISSING` on the other side."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [
        {"key": k, "a": fa.get(k, MISSING), "b": fb.get(k, MISSING)}
        for k in keys
        if fa.get(k, MISSING) != fb.get(k, MISSING)
    ]


def _share(n: int | None, generated: int | None) -> float | None:
    return round(n / generated, 4) if n is not None and generated else None


def _funnel(fa: dict[str, int], fb: dict[str, int]) -> list[dict[str, Any]]:
    steps = list(fa) + [s for s in fb if s not in fa]
    ga, gb = fa.get("generated"), fb.get("generated")
    rows = []
    for step in steps:
        a, b = fa.get(step), fb.get(step)
        # shares of generated, as `factory stats` prints them (none for problems)
        sa = None if step == "problems" else _share(a, ga)
        sb = None if step == "problems" else _share(b, gb)
        rows.append(
            {
                "step": step,
                "a": a,
                "b": b,
                "delta": _delta(a, b),
                "share_a": sa,
                "share_b": sb,
                "share_delta": _delta(sa, sb),
            }
        )
    return rows


def _by_source(ra: list[dict], rb: list[dict]) -> list[dict[str, Any]]:
    a, b = {r["source"]: r for r in ra}, {r["source"]: r for r in rb}
    rows = []
    for source in sorted(set(a) | set(b)):
        x, y = a.get(source, {}), b.get(source, {})
        rows.append(
            {
                "source": source,
                "generated_a": x.get("generated"),
                "generated_b": y.get("generated"),
                "kept_a": x.get("kept"),
                "kept_b": y.get("kept"),
                "acceptance_a": x.get("acceptance"),
                "acceptance_b": y.get("acceptance"),
                "acceptance_delta": _delta(x.get("acceptance"), y.get("acceptance")),
            }
        )
    return rows


def _drops(ra: list[dict], rb: list[dict]) -> list[dict[str, Any]]:
    """Every (stage, reason) either run dropped for; 0 where a run has none."""
    a = {(r["stage"], r["drop_reason"]): r["n"] for r in ra}
    b = {(r["stage"], r["drop_reason"]): r["n"] for r in rb}
    keys = sorted(set(a) | set(b), key=lambda k: (-max(a.get(k, 0), b.get(k, 0)), k))
    return [
        {
            "stage": stage,
            "reason": reason,
            "a": a.get((stage, reason), 0),
            "b": b.get((stage, reason), 0),
            "delta": b.get((stage, reason), 0) - a.get((stage, reason), 0),
        }
        for stage, reason in keys
    ]


def _per_kept(sa: dict[str, Any], sb: dict[str, Any]) -> list[dict[str, Any]]:
    def measures(s: dict[str, Any]) -> dict[str, Any]:
        kept = s["funnel"].get("kept") or 0
        teacher = s["teacher"]

        def per(x: float | None) -> float | None:
            return round(x / kept, 4) if kept and x is not None else None

        return {
            "teacher model": teacher.get("model"),
            "kept traces": kept,
            "teacher completion tokens": teacher.get("completion_tokens"),
            "teacher completion tokens per kept trace": per(teacher.get("completion_tokens")),
            "kept completion tokens per kept trace": per(s["tokens_kept"].get("completion")),
            "cost $": s["cost"].get("all_samples"),
            "cost $ per kept trace": s["cost"].get("per_kept_trace"),
            "seconds": s["seconds"],
            "seconds per kept trace": per(s["seconds"]),
        }

    a, b = measures(sa), measures(sb)
    return [{"measure": k, "a": a[k], "b": b[k], "delta": _delta(a[k], b[k])} for k in a]


def _dedup(da: dict[str, Any], db: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for level in list(da) + [x for x in db if x not in da]:
        x, y = da.get(level) or {}, db.get(level) or {}
        for measure, get in (
            ("rows", lambda d: d.get("rows")),
            ("clusters", lambda d: d.get("clusters")),
            (
                "exact dups",
                lambda d: (d.get("drops") or {}).get("duplicate_exact", 0) if d else None,
            ),
            ("near dups", lambda d: (d.get("drops") or {}).get("duplicate_near", 0) if d else None),
            ("largest cluster", lambda d: d.get("largest_cluster")),
            ("threshold", lambda d: d.get("threshold")),
        ):
            va, vb = get(x), get(y)
            rows.append(
                {"level": level, "measure": measure, "a": va, "b": vb, "delta": _delta(va, vb)}
            )
    return rows


def _decontamination(ca: dict | None, cb: dict | None) -> list[dict[str, Any]]:
    ca, cb = ca or {}, cb or {}
    benchmarks = list(ca.get("benchmarks") or {}) + [
        x for x in (cb.get("benchmarks") or {}) if x not in (ca.get("benchmarks") or {})
    ]
    rows = []
    for level in ("problems", "traces"):
        if level not in ca and level not in cb:
            continue
        for bench in benchmarks:
            va = (ca.get(level) or {}).get("hits", {}).get(bench, 0) if level in ca else None
            vb = (cb.get(level) or {}).get("hits", {}).get(bench, 0) if level in cb else None
            rows.append(
                {"level": level, "benchmark": bench, "a": va, "b": vb, "delta": _delta(va, vb)}
            )
    return rows


def _selection(sa: dict[str, Any], sb: dict[str, Any]) -> list[dict[str, Any]]:
    """Flat measures of each selection part (select, adaptive, majority_vote, journey); nested
    ones (histograms, rounds) as compact JSON, without a delta."""
    rows = []
    for part in list(sa) + [p for p in sb if p not in sa]:
        x, y = sa.get(part) or {}, sb.get(part) or {}
        for measure in list(x) + [m for m in y if m not in x]:
            va, vb = x.get(measure), y.get(measure)
            rows.append(
                {"part": part, "measure": measure, "a": va, "b": vb, "delta": _delta(va, vb)}
            )
    return rows


def _delta(a: Any, b: Any) -> float | int | None:
    numbers = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return None
    if isinstance(a, numbers) and isinstance(b, numbers):
        d = b - a
        return d if isinstance(d, int) else round(d, 6)
    return None


# ---- rendering ---------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _signed(value: float | int | None) -> str:
    if value is None:
        return ""
    if value == 0:
        return "0"
    return f"{value:+d}" if isinstance(value, int) else f"{value:+g}"


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _pp(value: float | None) -> str:
    if value is None:
        return ""
    return "0" if value == 0 else f"{value * 100:+.1f} pp"


def diff_tables(diff: dict[str, Any]) -> list:
    """The diff as rich tables, in the order `factory diff` prints them."""
    from factory.display import table

    out = [
        table(
            "runs",
            ["", "path", "run id", "recipe"],
            [
                (side, diff[side]["path"], diff[side]["run_id"], diff[side]["recipe"])
                for side in "ab"
            ],
        ),
        table(
            "funnel (delta = B - A; shares of each run's generated)",
            ["step", "A", "B", "delta", "A of generated", "B of generated", "delta share"],
            [
                (
                    r["step"],
                    _cell(r["a"]),
                    _cell(r["b"]),
                    _signed(r["delta"]),
                    _pct(r["share_a"]),
                    _pct(r["share_b"]),
                    _pp(r["share_delta"]),
                )
                for r in diff["funnel"]
            ],
        ),
    ]
    if diff["by_source"]:
        out.append(
            table(
                "acceptance by source",
                [
                    "source",
                    *("A generated", "A kept", "A acceptance"),
                    *("B generated", "B kept", "B acceptance", "delta acceptance"),
                ],
                [
                    (
                        r["source"],
                        _cell(r["generated_a"]),
                        _cell(r["kept_a"]),
                        _pct(r["acceptance_a"]),
                        _cell(r["generated_b"]),
                        _cell(r["kept_b"]),
                        _pct(r["acceptance_b"]),
                        _pp(r["acceptance_delta"]),
                    )
                    for r in diff["by_source"]
                ],
            )
        )
    if diff["drop_reasons"]:
        out.append(
            table(
                "drop reasons",
                ["stage", "reason", "A", "B", "delta"],
                [
                    (r["stage"], r["reason"], r["a"], r["b"], _signed(r["delta"]))
                    for r in diff["drop_reasons"]
                ],
            )
        )
    out.append(_measures("teacher, tokens, cost, time", "measure", diff["per_kept_trace"]))
    recipe = diff["recipe"]
    changed = recipe["changed"]
    title = (
        "recipe: same fingerprint"
        if recipe["same"]
        else f"recipe: fingerprint {recipe['fingerprint_a']} -> {recipe['fingerprint_b']}, "
        f"{len(changed)} key(s) differ"
    )
    out.append(
        table(title, ["key", "A", "B"], [(c["key"], _cell(c["a"]), _cell(c["b"])) for c in changed])
    )
    if diff["dedup"]:
        out.append(_measures("dedup", "level", diff["dedup"], extra="measure"))
    if diff["decontamination"]:
        out.append(_measures("decontamination hits", "level", diff["decontamination"], "benchmark"))
    if diff["selection"]:
        out.append(_measures("selection", "part", diff["selection"], extra="measure"))
    return out


def _measures(title: str, first: str, rows: list[dict], extra: str | None = None):
    from factory.display import table

    names = [first] + ([extra] if extra else [])
    return table(
        title,
        [*names, "A", "B", "delta"],
        [(*(r[n] for n in names), _cell(r["a"]), _cell(r["b"]), _signed(r["delta"])) for r in rows],
    )
