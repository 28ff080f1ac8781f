"""Questions about a chart and their answers, computed from its table, never guessed.

A question is a `QASpec` (what to compute: type, series, categories, threshold); `compute_answer` computes its
answer from the chart's table and `phrase` writes it as a question. The template generator `make_questions` picks
specs that have exactly one right answer on this chart. LLM enrichment (`finetune.bedrock`) returns specs too, so
its answers are checked by the same `compute_answer`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import numpy as np

from mmrag.finetune.charts import MULTI_SERIES_KINDS, Chart

QUESTION_TYPES = (
    "value",
    "max",
    "min",
    "argmax",
    "argmin",
    "compare",
    "difference",
    "sum",
    "average",
    "ratio",
    "percentage",
    "trend",
    "count",
    "describe",
)
TREND_KINDS = ("line", "multi_line", "area")


class UnanswerableError(ValueError):
    """The spec does not have exactly one right answer on this chart (a tie, an unknown series, ...)."""


@dataclass(frozen=True)
class QASpec:
    """What a question asks; its answer is a function of the chart's table alone."""

    qtype: str
    series: str | None = None
    """The series the question is about; None: the plotted one (or, for `sum` with categories, all series)."""
    categories: tuple[str, ...] = ()
    threshold: float | None = None
    """`count` only: count the categories whose value is above it; None counts the categories."""


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    spec: QASpec
    source: str = "template"
    """`template` or the LLM model id that wrote the question."""


def compute_answer(chart: Chart, spec: QASpec) -> str:
    """The answer to `spec`, formatted as the chart shows numbers; UnanswerableError when there is no single one."""
    if spec.qtype not in _ANSWERS:
        raise UnanswerableError(f"unknown question type {spec.qtype!r}")
    try:
        return _ANSWERS[spec.qtype](chart, spec)
    except (KeyError, ValueError, IndexError, ZeroDivisionError) as e:
        raise UnanswerableError(f"{spec.qtype} on chart {chart.id}: {e}") from e


def _lookup(chart: Chart, spec: QASpec) -> dict[str, float]:
    return dict(zip(chart.categories, chart.values(spec.series), strict=True))


def _unique_extreme(chart: Chart, spec: QASpec, pick: Callable[[Iterable[float]], float]) -> str:
    table = _lookup(chart, spec)
    best = pick(table.values())
    winners = [c for c, v in table.items() if v == best]
    if len(winners) != 1:
        raise ValueError("tie")
    return winners[0]


def _value(chart: Chart, spec: QASpec) -> str:
    (category,) = spec.categories
    return chart.measure_of(spec.series).format(_lookup(chart, spec)[category])


def _extreme(chart: Chart, spec: QASpec) -> str:
    values = chart.values(spec.series)
    return chart.measure_of(spec.series).format(max(values) if spec.qtype == "max" else min(values))


def _arg(chart: Chart, spec: QASpec) -> str:
    return _unique_extreme(chart, spec, max if spec.qtype == "argmax" else min)


def _compare(chart: Chart, spec: QASpec) -> str:
    a, b = spec.categories
    table = _lookup(chart, spec)
    if table[a] == table[b]:
        raise ValueError("equal values")
    return a if table[a] > table[b] else b


def _difference(chart: Chart, spec: QASpec) -> str:
    a, b = spec.categories
    table = _lookup(chart, spec)
    measure = chart.measure_of(spec.series)
    return measure.format(round(abs(table[a] - table[b]), measure.decimals))


def _sum(chart: Chart, spec: QASpec) -> str:
    if spec.categories:  # a stack's total: one category across every series
        (category,) = spec.categories
        index = chart.categories.index(category)
        return chart.measure.format(sum(s.values[index] for s in chart.series))
    return chart.measure_of(spec.series).format(sum(chart.values(spec.series)))


def _average(chart: Chart, spec: QASpec) -> str:
    measure = chart.measure_of(spec.series)
    values = chart.values(spec.series)
    return measure.format(sum(values) / len(values), decimals=min(measure.decimals + 1, 2))


def _ratio(chart: Chart, spec: QASpec) -> str:
    a, b = spec.categories
    table = _lookup(chart, spec)
    return f"{table[a] / table[b]:.2f}"


def _percentage(chart: Chart, spec: QASpec) -> str:
    (category,) = spec.categories
    table = _lookup(chart, spec)
    return f"{100 * table[category] / sum(table.values()):.1f}%"


def _trend(chart: Chart, spec: QASpec) -> str:
    values = chart.values(spec.series)
    if chart.kind not in TREND_KINDS or values[-1] == values[0]:
        raise ValueError("no trend on this chart")
    return "Increase" if values[-1] > values[0] else "Decrease"


def _count(chart: Chart, spec: QASpec) -> str:
    if spec.threshold is None:
        return str(len(chart.categories))
    return str(sum(v > spec.threshold for v in chart.values(spec.series)))


def _describe(chart: Chart, spec: QASpec) -> str:
    kind = chart.kind.replace("_", " ").replace("hbar", "horizontal bar")
    what = f"A {kind} chart of {chart.measure.name.lower()} by {chart.dimension.lower()}"
    if chart.kind == "scatter":
        what = f"A scatter chart of {chart.series[1].name.lower()} against {chart.series[0].name.lower()}"
    if len(chart.series) > 1 and chart.kind != "scatter":
        what += " for " + ", ".join(s.name for s in chart.series)
    series = chart.series[0].name if chart.kind in MULTI_SERIES_KINDS else None
    top = _unique_extreme(chart, QASpec("argmax", series), max)
    low = _unique_extreme(chart, QASpec("argmin", series), min)
    label = f" ({series})" if series else ""
    values = _lookup(chart, QASpec("value", series))
    measure = chart.measure_of(series)
    return (
        f"{what}. Highest{label}: {top} ({measure.format(values[top])}); "
        f"lowest{label}: {low} ({measure.format(values[low])})."
    )


_ANSWERS = {
    "value": _value,
    "max": _extreme,
    "min": _extreme,
    "argmax": _arg,
    "argmin": _arg,
    "compare": _compare,
    "difference": _difference,
    "sum": _sum,
    "average": _average,
    "ratio": _ratio,
    "percentage": _percentage,
    "trend": _trend,
    "count": _count,
    "describe": _describe,
}


def phrase(chart: Chart, spec: QASpec) -> str:
    """The question a user would ask for `spec` on this chart."""
    m = chart.measure_of(spec.series).name.lower()
    dim = "bin" if chart.kind == "histogram" else chart.dimension.lower()
    of = f" for {spec.series}" if spec.series and chart.kind != "scatter" else ""
    cats = spec.categories
    if chart.kind == "histogram":
        m = "number of observations"
    questions = {
        "value": lambda: f"What is the {m} of {cats[0]}{of}?",
        "max": lambda: f"What is the highest {m}{of}?",
        "min": lambda: f"What is the lowest {m}{of}?",
        "argmax": lambda: f"Which {dim} has the highest {m}{of}?",
        "argmin": lambda: f"Which {dim} has the lowest {m}{of}?",
        "compare": lambda: f"Which is higher{of}: the {m} of {cats[0]} or of {cats[1]}?",
        "difference": lambda: f"What is the difference in {m} between {cats[0]} and {cats[1]}{of}?",
        "sum": lambda: (
            f"What is the total {m} of {cats[0]} across all series?"
            if cats
            else f"What is the total {m} across all {dim}s{of}?"
        ),
        "average": lambda: f"What is the average {m} across the {dim}s{of}?",
        "ratio": lambda: f"What is the ratio of the {m} of {cats[0]} to that of {cats[1]}{of}?",
        "percentage": lambda: f"What percentage of the total {m}{of} does {cats[0]} account for?",
        "trend": lambda: f"Did the {m}{of} increase or decrease from {chart.categories[0]} to {chart.categories[-1]}?",
        "count": lambda: (
            f"How many {dim}s are shown in the chart?"
            if spec.threshold is None
            else f"How many {dim}s have a {m}{of} above {chart.measure_of(spec.series).format(spec.threshold)}?"
        ),
        "describe": lambda: "Describe the chart briefly.",
    }
    return questions[spec.qtype]()


def make_questions(chart: Chart, rng: np.random.Generator, k: int) -> list[QA]:
    """Up to `k` questions of distinct types, each with one right answer computed from the table."""
    qas: list[QA] = []
    for qtype in rng.permutation(_types_for(chart)):
        spec = _random_spec(chart, str(qtype), rng)
        try:
            answer = compute_answer(chart, spec)
        except UnanswerableError:
            continue
        qas.append(QA(phrase(chart, spec), answer, spec))
        if len(qas) == k:
            break
    return qas


def _types_for(chart: Chart) -> list[str]:
    types = [t for t in QUESTION_TYPES if t != "trend" or chart.kind in TREND_KINDS]
    if chart.kind in ("pie", "donut") and not chart.style.value_labels:
        types = [t for t in types if t in ("argmax", "argmin", "compare", "percentage", "count", "describe")]
    if chart.kind == "scatter" or (chart.measure.suffix == "%" and chart.kind not in ("pie", "donut")):
        types = [t for t in types if t not in ("sum", "percentage")]  # a total of rates means nothing
    return types


def _random_spec(chart: Chart, qtype: str, rng: np.random.Generator) -> QASpec:
    series: str | None = None
    if chart.kind in MULTI_SERIES_KINDS or (chart.kind == "scatter" and qtype in ("value", "max", "min")):
        series = chart.series[int(rng.integers(len(chart.series)))].name
    a, b = (str(c) for c in rng.choice(chart.categories, size=2, replace=False))
    spec = QASpec(qtype, series)
    if qtype in ("value", "percentage"):
        return replace(spec, categories=(a,))
    if qtype in ("compare", "difference", "ratio"):
        return replace(spec, categories=(a, b))
    if qtype == "sum" and chart.kind == "stacked_bar" and rng.random() < 0.5:
        return QASpec(qtype, categories=(a,))
    if qtype == "count" and rng.random() < 0.5:
        values = sorted(chart.values(series))
        i = int(rng.integers(len(values) - 1))
        midpoint = round((values[i] + values[i + 1]) / 2, chart.measure_of(series).decimals)
        if values[i] < midpoint < values[i + 1]:
            return replace(spec, threshold=midpoint)
    return spec
