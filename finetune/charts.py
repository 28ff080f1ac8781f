"""Charts as data: the ground-truth table and metadata of one synthetic chart, and a seeded random sampler.

A `Chart` is everything needed to draw the PNG (`finetune.renderer`) and to compute every answer about it
(`finetune.questions`); it round-trips through JSON, the file saved beside each PNG.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from mmrag.finetune.domains import Domain, Measure

CHART_KINDS = (
    "bar",
    "hbar",
    "grouped_bar",
    "stacked_bar",
    "line",
    "multi_line",
    "area",
    "pie",
    "donut",
    "scatter",
    "histogram",
)
MULTI_SERIES_KINDS = ("grouped_bar", "stacked_bar", "multi_line")
TIME_DIMENSIONS = ("Year", "Quarter", "Month")
FONTS = ("DejaVu Sans", "DejaVu Serif", "DejaVu Sans Mono")
PALETTES = ("tab10", "Set2", "Dark2", "Paired", "Set1", "tab20b", "Accent", "viridis")
COUNT = Measure(name="Count", decimals=0)


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[float, ...]
    """One value per category, rounded to the measure's decimals (what the chart shows)."""


@dataclass(frozen=True)
class Style:
    """How the chart looks; never changes what it says."""

    width: float
    height: float
    dpi: int
    font: str
    font_size: int
    palette: str
    legend: bool
    value_labels: bool
    grid: bool


@dataclass(frozen=True)
class Chart:
    id: str
    kind: str
    domain: str
    title: str
    dimension: str
    """What the categories are (``Region``; ``bin`` ranges of a histogram; the labelled points of a scatter)."""
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    measure: Measure
    """Unit of the plotted values (the y series of a scatter)."""
    style: Style
    x_measure: Measure | None = None
    """Scatter only: unit of the first series, plotted on the x axis."""
    x_label: str = ""
    y_label: str = ""

    def values(self, series: str | None = None) -> tuple[float, ...]:
        """A series' values by name; None means the plotted one (the only one, or a scatter's y)."""
        if series is None:
            return self.series[-1].values
        for s in self.series:
            if s.name == series:
                return s.values
        raise KeyError(f"chart {self.id} has no series {series!r}")

    def measure_of(self, series: str | None) -> Measure:
        if self.kind == "scatter" and self.x_measure is not None and series == self.series[0].name:
            return self.x_measure
        return self.measure

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chart:
        x_measure = data.get("x_measure")
        return cls(
            **{
                **data,
                "categories": tuple(data["categories"]),
                "series": tuple(Series(s["name"], tuple(s["values"])) for s in data["series"]),
                "measure": Measure(**data["measure"]),
                "style": Style(**data["style"]),
                "x_measure": Measure(**x_measure) if x_measure else None,
            }
        )


def random_chart(chart_id: str, kind: str, domain: Domain, rng: np.random.Generator) -> Chart:
    """A chart of `kind` with realistic values and labels from `domain`; the same rng state gives the same chart."""
    if kind not in CHART_KINDS:
        raise ValueError(f"unknown chart kind {kind!r}")
    measure = domain.measures[rng.integers(len(domain.measures))]
    dimension, categories = _categories(kind, domain, rng)
    title = str(rng.choice(domain.titles)).format(measure=measure.name, dimension=dimension.lower())
    chart = Chart(
        id=chart_id,
        kind=kind,
        domain=domain.name,
        title=title,
        dimension=dimension,
        categories=categories,
        series=(),
        measure=measure,
        style=_style(kind, rng),
        x_label=dimension,
        y_label=_axis_label(measure),
    )
    if kind == "histogram":
        return _histogram(chart, rng)
    if kind == "scatter":
        return _scatter(chart, domain, rng)
    n_series = int(rng.integers(2, 4)) if kind in MULTI_SERIES_KINDS else 1
    names = tuple(str(s) for s in rng.choice(domain.series, size=n_series, replace=False))
    trending = kind in ("line", "multi_line", "area")
    series = tuple(Series(name, _values(measure, len(categories), rng, trending)) for name in names)
    return replace(chart, series=series)


def _categories(kind: str, domain: Domain, rng: np.random.Generator) -> tuple[str, tuple[str, ...]]:
    names = list(domain.dimensions)
    if kind in ("line", "multi_line", "area"):
        names = [n for n in names if n in TIME_DIMENSIONS] or names
    dimension = str(rng.choice(names))
    labels = domain.dimensions[dimension]
    low = 3 if kind not in ("line", "multi_line", "area") else 4
    high = min(len(labels), 6 if kind in ("pie", "donut", "grouped_bar", "stacked_bar") else 9)
    n = int(rng.integers(low, max(low, high) + 1)) if len(labels) > low else len(labels)
    start = int(rng.integers(0, len(labels) - n + 1))
    return dimension, tuple(labels[start : start + n])  # a contiguous run keeps time axes in order


def _values(measure: Measure, n: int, rng: np.random.Generator, trending: bool) -> tuple[float, ...]:
    """n distinct values in [low, high] rounded as shown (distinct so argmax/argmin have one answer)."""
    for _ in range(100):
        if trending:
            start = rng.uniform(measure.low, measure.high)
            steps = rng.normal(rng.choice([-1, 1]) * 0.08, 0.12, size=n - 1) * (measure.high - measure.low)
            raw = np.clip(np.concatenate([[start], start + np.cumsum(steps)]), measure.low, measure.high)
        else:
            raw = rng.uniform(measure.low, measure.high, size=n)
        values = tuple(round(float(v), measure.decimals) for v in raw)
        if len(set(values)) == n and min(values) > 0:
            return values
    raise RuntimeError(f"cannot draw {n} distinct values for measure {measure.name!r}")


def _histogram(chart: Chart, rng: np.random.Generator) -> Chart:
    measure = chart.measure
    n_bins = int(rng.integers(5, 9))
    width = _nice_width((measure.high - measure.low) / n_bins)
    start = np.floor(measure.low / width) * width
    edges = [start + i * width for i in range(n_bins + 1)]
    samples = rng.normal(rng.uniform(edges[1], edges[-2]), (edges[-1] - edges[0]) / 5, size=int(rng.integers(60, 400)))
    counts, _ = np.histogram(np.clip(samples, edges[0], edges[-1]), bins=edges)
    labels = tuple(f"{_plain(a)}–{_plain(b)}" for a, b in itertools.pairwise(edges))
    return replace(
        chart,
        title=f"Distribution of {measure.name.lower()}",
        dimension="bin",
        categories=labels,
        series=(Series("Count", tuple(float(c) for c in counts)),),
        measure=COUNT,
        x_label=_axis_label(measure),
        y_label="Count",
    )


def _scatter(chart: Chart, domain: Domain, rng: np.random.Generator) -> Chart:
    others = [m for m in domain.measures if m.name != chart.measure.name] or [chart.measure]
    x_measure = others[int(rng.integers(len(others)))]
    n = len(chart.categories)
    xs = Series(x_measure.name, _values(x_measure, n, rng, trending=False))
    ys = Series(chart.measure.name, _values(chart.measure, n, rng, trending=False))
    return replace(
        chart,
        title=f"{chart.measure.name} vs {x_measure.name.lower()}",
        series=(xs, ys),
        x_measure=x_measure,
        x_label=_axis_label(x_measure),
    )


def _style(kind: str, rng: np.random.Generator) -> Style:
    width = float(rng.choice([5.0, 6.0, 6.4, 7.0, 8.0]))
    return Style(
        width=width,
        height=round(width * float(rng.uniform(0.6, 0.85)), 1),
        dpi=int(rng.choice([72, 80, 100])),
        font=str(rng.choice(FONTS)),
        font_size=int(rng.integers(8, 13)),
        palette=str(rng.choice(PALETTES)),
        legend=kind in MULTI_SERIES_KINDS or (kind in ("pie", "donut") and bool(rng.random() < 0.5)),
        value_labels=bool(rng.random() < 0.6),
        grid=bool(rng.random() < 0.5),
    )


def _axis_label(measure: Measure) -> str:
    unit = (measure.prefix + measure.suffix).strip()
    return f"{measure.name} ({unit})" if unit else measure.name


def _nice_width(raw: float) -> float:
    magnitude = 10 ** np.floor(np.log10(raw))
    return float(min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw))


def _plain(x: float) -> str:
    return f"{x:g}"
