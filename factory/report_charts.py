"""Charts for `factory report`: matplotlib figures saved as SVG text to inline in the page.

matplotlib draws with no display (`Figure` objects, never pyplot's global state) and no network:
the SVG is vector, keeps its text as text (`svg.fonttype: none`, so the browser's fonts draw it
and it can be searched and copied), and every id inside a chart (clip paths, markers, matplotlib's
numbered groups) is prefixed with the chart's name, so ids stay unique when many charts share
one page. Colors are fixed per meaning: kept is
green, rejected red, target grey.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

KEPT, REJECTED, NEUTRAL, TARGET = "#2e7d32", "#c62828", "#1565c0", "#9e9e9e"
PALETTE = ["#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#795548", "#546e7a"]
WIDTH = 8.0  # inches at 100 dpi: 800 px, the page's content width

_STYLE = {
    "svg.fonttype": "none",
    "text.parse_math": False,  # labels are data: "$5 to $10" is text, not TeX
    "font.size": 10,
    "font.family": "sans-serif",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
}


def _figure(height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(WIDTH, height), dpi=100, layout="constrained")


def _svg(fig, salt: str) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg")
    text = buf.getvalue()
    # inline in HTML: drop the XML prolog and doctype; the <svg> element scales to its box
    text = text[text.index("<svg") :]
    # every id (matplotlib numbers its groups figure_1, axes_1… in each file) and every
    # reference to one gets the chart's name as a prefix: ids stay unique across the page
    text = re.sub(r'\bid="([^"]+)"', rf'id="{salt}-\1"', text)
    text = re.sub(r'(xlink:href="#|url\(#)([^")]+)', rf"\g<1>{salt}-\2", text)
    return re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"', r"<svg\1", text, count=1)


def _short(label: str, n: int = 48) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _label_rows(ax, labels: Sequence[str], title: str, xlabel: str) -> list[int]:
    """One row per label, the first on top; the title left-aligned. Returns the rows' y."""
    y = list(range(len(labels)))
    ax.set_yticks(y, [_short(str(x)) for x in labels])
    ax.invert_yaxis()
    ax.set_title(title, loc="left")
    ax.set_xlabel(xlabel)
    return y


def bars(
    salt: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    notes: Sequence[str] | None = None,
    color: str = NEUTRAL,
    xlim: tuple[float, float] | None = None,
    percent: bool = False,
) -> str:
    """Horizontal bars, first label on top, each annotated (`notes`, else its value)."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = _figure(max(1.6, 0.6 + 0.32 * len(labels)))
        ax = fig.add_subplot()
        y = _label_rows(ax, labels, title, xlabel)
        ax.barh(y, values, color=color, height=0.7)
        top = max([v for v in values if v is not None] or [0])
        if xlim:
            ax.set_xlim(*xlim)
        else:
            ax.set_xlim(0, top * 1.25 if top > 0 else 1)
        if percent:
            ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
            ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        else:  # counts: whole-number ticks
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        for k, v in enumerate(values):
            text = notes[k] if notes else f"{v:,.4g}"
            ax.annotate(
                text, (v or 0, k), xytext=(4, 0), textcoords="offset points", va="center",
                fontsize=9,
            )  # fmt: skip
        return _svg(fig, salt)


def stacked_bars(
    salt: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    title: str,
    xlabel: str,
    colors: dict[str, str] | None = None,
) -> str:
    """Horizontal stacked bars: one bar per label, one segment per series, with a legend."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = _figure(max(1.8, 0.9 + 0.34 * len(labels)))
        ax = fig.add_subplot()
        y = _label_rows(ax, labels, title, xlabel)
        left = [0.0] * len(labels)
        for k, (name, values) in enumerate(series.items()):
            color = (colors or {}).get(name, PALETTE[k % len(PALETTE)])
            ax.barh(y, values, left=left, color=color, height=0.7, label=name)
            left = [a + (b or 0) for a, b in zip(left, values, strict=True)]
        _legend_above(ax, len(series))
        return _svg(fig, salt)


def histogram(
    salt: str,
    edges: Sequence[float],
    series: dict[str, Sequence[int]],
    *,
    title: str,
    xlabel: str,
    colors: dict[str, str],
    medians: dict[str, float | None] | None = None,
) -> str:
    """Counts per bin for each series, overlaid as translucent bars, with dashed medians."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = _figure(3.2)
        ax = fig.add_subplot()
        for name, counts in series.items():  # filled, with an outline so overlaps stay legible
            ax.stairs(counts, edges, fill=True, alpha=0.3, color=colors[name])
            ax.stairs(
                counts, edges, color=colors[name], linewidth=1.4, label=f"{name} ({sum(counts):,})"
            )
            m = (medians or {}).get(name)
            if m is not None:
                ax.axvline(m, color=colors[name], linestyle="--", linewidth=1.2)
                ax.annotate(
                    f"median {m:,.0f}", (m, 1), xycoords=("data", "axes fraction"),
                    xytext=(3, -12 if name == next(iter(series)) else -24),
                    textcoords="offset points", color=colors[name], fontsize=8,
                )  # fmt: skip
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("samples")
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        _legend_above(ax, len(series))
        return _svg(fig, salt)


def heatmap(
    salt: str,
    rows: Sequence[str],
    cols: Sequence[str],
    counts: Sequence[Sequence[int]],
    *,
    title: str,
    ylabel: str,
    xlabel: str,
) -> str:
    """A count matrix, each cell labelled with its count and its share of the row."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = _figure(max(2.0, 1.0 + 0.5 * len(rows)))
        ax = fig.add_subplot()
        # pcolormesh, not imshow: vector cells (imshow embeds a PNG)
        xs = [j - 0.5 for j in range(len(cols) + 1)]
        ys = [i - 0.5 for i in range(len(rows) + 1)]
        ax.pcolormesh(xs, ys, counts, cmap="Blues", edgecolors="white", linewidth=1)
        ax.invert_yaxis()
        ax.spines[:].set_visible(False)
        ax.set_xticks(range(len(cols)), [_short(c, 24) for c in cols])
        ax.set_yticks(range(len(rows)), [_short(r, 24) for r in rows])
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        top = max((c for row in counts for c in row), default=0)
        for i, row in enumerate(counts):
            total = sum(row)
            for j, c in enumerate(row):
                share = f"\n{c / total:.0%}" if total else ""
                ax.text(
                    j, i, f"{c:,}{share}", ha="center", va="center", fontsize=9,
                    color="white" if top and c > top * 0.6 else "black",
                )  # fmt: skip
        return _svg(fig, salt)


def grouped_bars(
    salt: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    ylabel: str,
    colors: dict[str, str] | None = None,
    log: bool = False,
) -> str:
    """Vertical bars, one group per label, one bar per series in each group, values on top."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        fig = _figure(3.2)
        ax = fig.add_subplot()
        n = len(series)
        width = 0.8 / n
        for k, (name, values) in enumerate(series.items()):
            x = [i - 0.4 + width * (k + 0.5) for i in range(len(labels))]
            heights = [v or 0 for v in values]
            color = (colors or {}).get(name, PALETTE[k % len(PALETTE)])
            drawn = ax.bar(x, heights, width=width * 0.95, color=color, label=name)
            ax.bar_label(drawn, labels=[f"{h:,.4g}" for h in heights], fontsize=8, padding=2)
        ax.set_xticks(range(len(labels)), [_short(str(x), 20) for x in labels])
        if log:
            ax.set_yscale("log")
            ax.set_ylim(bottom=0.8)
            ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
            ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        else:
            ax.margins(y=0.15)
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylabel)
        if n > 1:
            _legend_above(ax, n)
        return _svg(fig, salt)


def _legend_above(ax, n: int) -> None:
    """The legend in one row above the plot's right end, clear of the data."""
    ax.legend(
        loc="lower right",
        bbox_to_anchor=(1.0, 1.0),
        ncol=n,
        fontsize=8,
        frameon=False,
        borderaxespad=0.2,
    )
