"""A native chart drawn from its data (matplotlib, Agg): the picture indexed beside the chart's text, since an
Office file holds the chart's data but no image of it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image

from mmrag.indexer.office_charts import Chart, Series

SIZE = (800, 600)
"""A drawn chart's width and height in pixels."""


def draw_chart(chart: Chart) -> Image.Image:
    """The chart drawn from its data (matplotlib, Agg): bars, lines, areas, pie/doughnut, scatter or radar, with
    its title, category labels and a legend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    chart = _literal(chart)
    figure = Figure(figsize=(SIZE[0] / 100, SIZE[1] / 100), dpi=100)  # not pyplot's: nothing holds it after
    canvas = FigureCanvasAgg(figure)
    kind = chart.types[0] if chart.types else "column"
    series = [s for s in chart.series if s.values][:20]
    axes = figure.add_subplot(projection="polar") if kind == "radar" else figure.add_subplot()
    if kind in ("pie", "doughnut") and series:
        _pie(axes, series[0], doughnut=kind == "doughnut")
    elif kind == "scatter":
        for s in series:
            axes.scatter(_numbers(s.categories, len(s.values)), _numbers(s.values), label=s.name or None, s=18)
        axes.set_xlabel(chart.category_title[:60])
    elif kind == "radar":
        _radar(axes, series)
    else:
        _category_chart(axes, kind, series, chart.category_title)
    if chart.title:
        axes.set_title(chart.title[:120])
    if len(series) > 1 and kind not in ("pie", "doughnut"):
        axes.legend(fontsize="small")
    figure.tight_layout()
    canvas.draw()
    return Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")


def _literal(chart: Chart) -> Chart:
    """The chart with its dollar signs escaped, so matplotlib draws '$1k_$5k' as written instead of failing to
    parse it as math (an escape, unlike rcParams, holds in every thread)."""

    def plain(text: str) -> str:
        return text.replace("$", r"\$")

    series = [Series(plain(s.name), [plain(c) for c in s.categories], s.values) for s in chart.series]
    return Chart(chart.types, plain(chart.title), plain(chart.category_title), series)


def _numbers(texts: Sequence[str], n: int | None = None) -> list[float]:
    def number(text: str, i: int) -> float:
        try:
            return float(text)
        except ValueError:
            return float(i + 1) if n is not None else math.nan

    numbers = [number(text, i) for i, text in enumerate(texts)]
    return numbers + [float(i + 1) for i in range(len(numbers), n or 0)]


def _padded(texts: Sequence[str], n: int) -> list[float]:
    """A series' values as numbers to draw, one per point of `n`: what is not a number, or missing, drawn as 0."""
    return [0.0 if math.isnan(v) else v for v in _numbers(texts)] + [0.0] * (n - len(texts))


def _label(labels: Sequence[str], i: int) -> str:
    """The label of point `i`, cut to 20 characters; blank past the labels."""
    return labels[i][:20] if i < len(labels) else ""


def _category_chart(axes: Any, kind: str, series: Sequence[Series], category_title: str) -> None:
    n = max(len(s.values) for s in series) if series else 0
    labels = next((s.categories for s in series if s.categories), [])
    positions = list(range(n))
    width = 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        values = _padded(s.values, n)
        if kind == "column":
            axes.bar([p - 0.4 + width * (k + 0.5) for p in positions], values, width, label=s.name or None)
        elif kind == "bar":
            axes.barh([p - 0.4 + width * (k + 0.5) for p in positions], values, width, label=s.name or None)
        elif kind == "area":
            axes.fill_between(positions, values, alpha=0.4, label=s.name or None)
        else:
            axes.plot(positions, values, marker="o", label=s.name or None)
    step = max(n // 20, 1)
    ticks = positions[::step]
    names = [_label(labels, p) for p in ticks]
    if kind == "bar":
        axes.set_yticks(ticks, names)
        axes.set_ylabel(category_title[:60])
    else:
        axes.set_xticks(ticks, names, rotation=30 if n > 6 else 0, ha="right" if n > 6 else "center")
        axes.set_xlabel(category_title[:60])


def _pie(axes: Any, series: Series, doughnut: bool) -> None:
    values = [max(v, 0.0) for v in _numbers(series.values) if not math.isnan(v)]
    if not any(values):
        return
    labels = [_label(series.categories, i) for i in range(len(values))]
    wedges = {"width": 0.4} if doughnut else None
    axes.pie(values, labels=labels, wedgeprops=wedges, autopct="%1.0f%%")
    axes.axis("equal")


def _radar(axes: Any, series: Sequence[Series]) -> None:
    n = max((len(s.values) for s in series), default=0)
    if n == 0:
        return
    angles = [2 * math.pi * i / n for i in range(n)] + [0.0]
    for s in series:
        values = _padded(s.values, n)
        axes.plot(angles, values + values[:1], label=s.name or None)
        axes.fill(angles, values + values[:1], alpha=0.15)
    labels = next((s.categories for s in series if s.categories), [])
    axes.set_xticks(angles[:-1], [_label(labels, i) for i in range(n)])
