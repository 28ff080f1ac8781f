"""Drawing a `Chart` to a PNG with matplotlib (object API and the Agg canvas: no global pyplot state)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.finetune.charts import Chart

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def render(chart: Chart, path: Path) -> Path:
    """Draw `chart` into the PNG at `path`."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    style = chart.style
    with rc_context({"font.family": style.font, "font.size": style.font_size}):
        fig = Figure(figsize=(style.width, style.height), dpi=style.dpi)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        _DRAWERS[chart.kind](ax, chart, _colors(style.palette, max(len(chart.series), len(chart.categories))))
        ax.set_title(chart.title)
        if chart.kind not in ("pie", "donut"):
            value_axis = ax.xaxis if chart.kind == "hbar" else ax.yaxis
            value_axis.set_major_formatter(FuncFormatter(lambda v, _: chart.measure.format(v)))
            ax.set_xlabel(chart.y_label if chart.kind == "hbar" else chart.x_label)
            ax.set_ylabel(chart.x_label if chart.kind == "hbar" else chart.y_label)
            if style.grid:
                ax.grid(True, alpha=0.3)
                ax.set_axisbelow(True)
        if style.legend and (len(chart.series) > 1 or chart.kind in ("pie", "donut")) and chart.kind != "scatter":
            ax.legend(fontsize=style.font_size - 1, loc="best")
        fig.tight_layout()
        fig.savefig(path, format="png")
    return path


def _colors(palette: str, n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps[palette]
    count = getattr(cmap, "N", 256)
    if count <= 20:
        return [cmap(i % count) for i in range(n)]
    return [cmap(x) for x in np.linspace(0.1, 0.9, n)]


def _labels(chart: Chart, values: tuple[float, ...]) -> list[str]:
    return [chart.measure.format(v) for v in values]


def _bar(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    values = chart.values()
    bars = ax.bar(chart.categories, values, color=colors[0])
    if chart.style.value_labels:
        ax.bar_label(bars, labels=_labels(chart, values), padding=2)


def _hbar(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    values = chart.values()
    bars = ax.barh(chart.categories, values, color=colors[0])
    ax.invert_yaxis()  # first category on top, as read
    if chart.style.value_labels:
        ax.bar_label(bars, labels=_labels(chart, values), padding=2)


def _grouped_bar(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    x = np.arange(len(chart.categories))
    width = 0.8 / len(chart.series)
    for i, series in enumerate(chart.series):
        offset = (i - (len(chart.series) - 1) / 2) * width
        bars = ax.bar(x + offset, series.values, width, label=series.name, color=colors[i])
        if chart.style.value_labels:
            ax.bar_label(bars, labels=_labels(chart, series.values), padding=1, fontsize=chart.style.font_size - 3)
    ax.set_xticks(x, chart.categories)


def _stacked_bar(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    bottom = np.zeros(len(chart.categories))
    for i, series in enumerate(chart.series):
        bars = ax.bar(chart.categories, series.values, bottom=bottom, label=series.name, color=colors[i])
        if chart.style.value_labels:
            ax.bar_label(bars, labels=_labels(chart, series.values), label_type="center")
        bottom += np.array(series.values)


def _line(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    markers = ("o", "s", "^", "D")
    for i, series in enumerate(chart.series):
        ax.plot(chart.categories, series.values, marker=markers[i % 4], color=colors[i], label=series.name)
        if chart.style.value_labels:
            for x, v in zip(chart.categories, series.values, strict=True):
                ax.annotate(chart.measure.format(v), (x, v), textcoords="offset points", xytext=(0, 5), ha="center")


def _area(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    values = chart.values()
    ax.fill_between(chart.categories, values, color=colors[0], alpha=0.45)
    ax.plot(chart.categories, values, color=colors[0], marker="o")
    ax.set_ylim(bottom=0)
    if chart.style.value_labels:
        for x, v in zip(chart.categories, values, strict=True):
            ax.annotate(chart.measure.format(v), (x, v), textcoords="offset points", xytext=(0, 5), ha="center")


def _pie(ax: Axes, chart: Chart, colors: list[Any], hole: float = 0.0) -> None:
    values = chart.values()
    total = sum(values)

    def label(pct: float) -> str:
        value = pct * total / 100
        shown = min(values, key=lambda v: abs(v - value))
        return f"{chart.measure.format(shown)}\n({pct:.1f}%)" if chart.style.value_labels else f"{pct:.1f}%"

    wedge = {"width": 1 - hole} if hole else None
    names = None if chart.style.legend else list(chart.categories)
    wedges, *_ = ax.pie(values, labels=names, colors=colors, autopct=label, startangle=90, wedgeprops=wedge)
    if chart.style.legend:
        for w, name in zip(wedges, chart.categories, strict=True):
            w.set_label(name)
    ax.axis("equal")


def _donut(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    _pie(ax, chart, colors, hole=0.45)


def _scatter(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    xs, ys = chart.series[0].values, chart.series[1].values
    ax.scatter(xs, ys, color=colors[0], s=40)
    x_measure = chart.measure_of(chart.series[0].name)
    ax.xaxis.set_major_formatter(lambda v, _: x_measure.format(v))
    for name, x, y in zip(chart.categories, xs, ys, strict=True):
        text = f"{name} ({x_measure.format(x)}, {chart.measure.format(y)})" if chart.style.value_labels else name
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=chart.style.font_size - 2)


def _histogram(ax: Axes, chart: Chart, colors: list[Any]) -> None:
    counts = chart.values()
    bars = ax.bar(chart.categories, counts, width=1.0, edgecolor="white", color=colors[0])
    if chart.style.value_labels:
        ax.bar_label(bars, labels=_labels(chart, counts), padding=2)
    ax.tick_params(axis="x", labelrotation=30)


_DRAWERS: dict[str, Callable[[Axes, Chart, list[Any]], None]] = {
    "bar": _bar,
    "hbar": _hbar,
    "grouped_bar": _grouped_bar,
    "stacked_bar": _stacked_bar,
    "line": _line,
    "multi_line": _line,
    "area": _area,
    "pie": _pie,
    "donut": _donut,
    "scatter": _scatter,
    "histogram": _histogram,
}
