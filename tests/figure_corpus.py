"""A corpus of PDFs and an HTML page whose figures, captions and tables are known: the truth is recorded while the
files are written, then checked against the rendered pages.

    corpus = make_corpus(folder, seed=HELD_OUT_SEEDS[0], pages=12)   # writes the files and folder/truth.json
    corpus = load_corpus(folder)                                     # the same Corpus, read back
    score(corpus, extract_corpus(corpus, ExtractOptions()))          # recall, precision, captions, IoU, tables

Each seed gives other charts, data, wording, label styles, positions and sizes:

- `charts-<seed>.pdf` (matplotlib, PdfPages): 1-4 vector charts a page (bar, grouped/stacked bars, line, scatter,
  pie, horizontal bars) with titles, axis labels, legends (some outside the axes), captions above or below (some on
  two or three lines), body text, a running header with a rule.
- `report-<seed>.pdf` (reportlab): charts from reportlab.graphics (bars, lines, line plots, pies), one or two
  columns of body text that refers to the figures, tables (platypus Table, GRID), raster photos and raster charts,
  running headers and footers with rules, underlined words, text-only pages (some with a boxed note), one page
  turned with /Rotate 90 (its content drawn upright, so it reads as a landscape page).
- `page-<seed>.html`: inline <svg> charts in <figure> with <figcaption>, and a <table> with a <caption>.

Boxes are (x0, top, x1, bottom) in PDF points on the page as displayed (rotation applied), origin top-left, as
`indexer.items.Item.bbox`. A vector chart's box is its layout box (matplotlib's tight bbox at 72 dpi with title,
labels and legend; reportlab's `Drawing.getBounds()`) shrunk to the ink found inside it on the rendered page, so a
pie's empty axes corners are not part of it; a raster image's box is where it is placed. Captions are the text as
printed (label included), whitespace-normalized. Dev seeds tune the detector; held-out seeds measure it.

The one module for the corpus: the three writers share its text, labels and truth types, and `score` judges
extraction against the truth for both the tests and bench/figures.py (hence its length).
"""

from __future__ import annotations

import io
import json
import math
import random
import statistics
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from mmrag.indexer.geometry import iou

Box = tuple[float, float, float, float]

DEV_SEEDS = (1, 2, 3, 4)
HELD_OUT_SEEDS = (1001, 1002, 1003, 1004)
LAYOUTS = ("matplotlib", "one-column", "two-column", "table", "raster", "text-only", "rotated", "mixed", "html")
"""Page types, for the per-type breakdown of the scores."""

# ---------------------------------------------------------------------------------------------------------- truth


@dataclass
class FigureTruth:
    bbox: Box | None
    """None for an HTML figure."""
    label: str | None
    """As printed without its separator ('Figure 3', 'Fig. 2.1', 'Exhibit 2'); None: no caption."""
    caption: str | None
    """The whole caption as printed, label included, whitespace-normalized."""
    vector: bool
    chart: str
    """bar, grouped, stacked, hbar, line, lineplot, scatter, pie, photo, raster-chart, svg-bar."""
    words: list[str] = field(default_factory=list)
    """Text printed inside the chart (title, axis label) that extraction can read."""
    references: list[str] = field(default_factory=list)
    """Body sentences on the same page that refer to it ('As shown in Figure 3, ...')."""


@dataclass
class TableTruth:
    bbox: Box | None
    label: str | None
    caption: str | None
    rows: int
    cols: int
    header: list[str]


@dataclass
class PageTruth:
    number: int | None
    """1-based page number; None for an HTML document."""
    layout: str
    size: tuple[float, float]
    """(width, height) in points as displayed."""
    rotation: int = 0
    figures: list[FigureTruth] = field(default_factory=list)
    tables: list[TableTruth] = field(default_factory=list)

    @property
    def text_only(self) -> bool:
        return not self.figures and not self.tables


@dataclass
class FileTruth:
    name: str
    """File name inside the corpus folder."""
    pages: list[PageTruth] = field(default_factory=list)


@dataclass
class Corpus:
    folder: Path
    seed: int
    files: list[FileTruth]

    @property
    def paths(self) -> list[Path]:
        return [self.folder / f.name for f in self.files]

    def save(self) -> Path:
        """folder/truth.json: {seed, files: [{name, pages: [{number, layout, size, rotation, text_only,
        figures: [{bbox, label, caption, vector, chart, words, references}],
        tables: [{bbox, label, caption, rows, cols, header}]}]}]}."""
        files = [
            {"name": f.name, "pages": [asdict(p) | {"text_only": p.text_only} for p in f.pages]} for f in self.files
        ]
        data = {"seed": self.seed, "files": files}
        path = self.folder / "truth.json"
        path.write_text(json.dumps(data, indent=1, ensure_ascii=False))
        return path


def load_corpus(folder: Path) -> Corpus:
    data = json.loads((folder / "truth.json").read_text())
    return Corpus(folder, data["seed"], [_file_from_json(f) for f in data["files"]])


def _file_from_json(data: dict[str, Any]) -> FileTruth:
    pages = []
    for p in data["pages"]:
        figures = [FigureTruth(**{**f, "bbox": _box(f["bbox"])}) for f in p["figures"]]
        tables = [TableTruth(**{**t, "bbox": _box(t["bbox"])}) for t in p["tables"]]
        pages.append(PageTruth(p["number"], p["layout"], tuple(p["size"]), p["rotation"], figures, tables))
    return FileTruth(data["name"], pages)


def _box(value: Sequence[float] | None) -> Box | None:
    return None if value is None else (value[0], value[1], value[2], value[3])


def normalize(text: str | None) -> str:
    return " ".join((text or "").split())


# ----------------------------------------------------------------------------------------------- words and labels

REGIONS = ["North", "South", "East", "West", "Central", "Pacific", "Atlantic", "Nordic", "Alpine", "Coastal"]
METRICS = [
    ("Revenue", "million USD"),
    ("Operating margin", "percent"),
    ("Headcount", "employees"),
    ("Energy use", "GWh"),
    ("Customer churn", "percent"),
    ("Shipments", "thousand units"),
    ("Water demand", "megalitres"),
    ("Support tickets", "tickets per day"),
    ("Rainfall", "mm"),
    ("Freight volume", "kilotonnes"),
]
GERMAN = ["Umsatz", "Energieverbrauch", "Mitarbeiterzahl", "Auslieferungen", "Wasserbedarf"]
DIMENSIONS = ["region", "quarter", "product line", "year", "segment", "plant", "channel"]
SUBJECTS = ["The team", "Our analysis", "The survey", "The model", "Management", "The audit", "This section"]
VERBS = ["reviews", "compares", "summarises", "tracks", "explains", "revisits", "details"]
OBJECTS = ["the annual targets", "regional performance", "supply risks", "pricing changes", "the cost base"]
CLAUSES = [
    "while demand stayed broadly stable",
    "after the spring reorganisation",
    "despite slower hiring",
    "in line with the forecast",
    "as input costs eased",
    "although two plants closed for maintenance",
]
FIGURE_STYLES = [
    ("Figure {n}", ":"),
    ("Figure {n}", "."),
    ("Fig. {s}.{k}", ""),
    ("Fig. {n}", ":"),
    ("Chart {n}", ""),
    ("Exhibit {n}", " —"),
    ("Abbildung {n}", ":"),
]
TABLE_STYLES = [("Table {n}", ":"), ("Table {n}", "."), ("Tabelle {n}", ":")]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(CLAUSES)}."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def reference(rng: random.Random, label: str) -> str:
    metric = rng.choice(METRICS)[0].lower()
    return rng.choice(
        [
            f"As shown in {label}, {metric} rose in the {rng.choice(REGIONS)} region.",
            f"The trend in {label} suggests that {metric} will level off next year.",
            f"See {label} for the breakdown of {metric} by {rng.choice(DIMENSIONS)}.",
        ]
    )


class Labels:
    """Figure and table labels of one document: one main style, now and then another one; some figures unlabelled."""

    def __init__(self, rng: random.Random, unlabelled: float = 0.12) -> None:
        self.rng = rng
        self.style = rng.choice(FIGURE_STYLES)
        self.table_style = rng.choice(TABLE_STYLES)
        self.unlabelled = unlabelled
        self.figures = 0
        self.tables = 0

    def figure(self, long: bool = False) -> tuple[str | None, str | None]:
        """(label, caption) of the next figure, or (None, None) for one without a caption."""
        if self.rng.random() < self.unlabelled:
            return None, None
        self.figures += 1
        fmt, sep = self.style if self.rng.random() > 0.15 else self.rng.choice(FIGURE_STYLES)
        n = self.figures
        label = fmt.format(n=n, s=(n + 1) // 2, k=2 - n % 2)
        return label, f"{label}{sep} {self.description(german=fmt.startswith('Abb'), long=long)}"

    def table(self) -> tuple[str, str]:
        self.tables += 1
        fmt, sep = self.table_style
        label = fmt.format(n=self.tables)
        return label, f"{label}{sep} {self.description(german=fmt.startswith('Tabelle'), long=False)}"

    def description(self, german: bool, long: bool) -> str:
        rng = self.rng
        start = rng.randrange(2012, 2020)
        if german:
            text = f"{rng.choice(GERMAN)} nach Region, {start}–{start + rng.randrange(2, 6)}"
        else:
            metric, unit = rng.choice(METRICS)
            text = f"{metric} by {rng.choice(DIMENSIONS)}, {start}–{start + rng.randrange(2, 6)} ({unit})"
        if long or rng.random() < 0.3:
            text += f". Data from the {rng.choice(REGIONS)} office survey; values are rounded {rng.choice(CLAUSES)}"
        return text + ("." if german or rng.random() < 0.5 else "")


def series(rng: random.Random, n: int, low: float = 5, high: float = 100) -> list[float]:
    return [round(rng.uniform(low, high), 1) for _ in range(n)]


# ----------------------------------------------------------------------------------------------------- matplotlib

MPL_CHARTS = ("bar", "grouped", "stacked", "hbar", "line", "scatter", "pie")
MARGIN = 54.0


def draw_mpl_chart(ax: Any, rng: random.Random, kind: str) -> list[str]:
    """One chart on `ax`; returns the words printed inside it that extraction can read (title, x label)."""
    metric, unit = rng.choice(METRICS)
    cats = rng.sample(REGIONS, rng.randrange(3, 7))
    title = f"{metric} ({unit})"
    xlabel = rng.choice(["Region", "Sales region", "Market"])
    if kind == "pie":
        ax.pie(series(rng, len(cats)), labels=cats, autopct="%1.0f%%", textprops={"fontsize": 7})
        ax.set_title(title, fontsize=9)
        return [title]
    groups = [str(y) for y in range(2019, 2019 + rng.randrange(2, 4))]
    if kind == "bar":
        ax.bar(cats, series(rng, len(cats)), color=rng.choice(["C0", "C1", "C2", "#4472c4"]))
    elif kind == "hbar":
        ax.barh(cats, series(rng, len(cats)), color="C4")
        xlabel = unit.capitalize()
    elif kind in ("grouped", "stacked"):
        bottom = [0.0] * len(cats)
        width = 0.8 / len(groups)
        for i, group in enumerate(groups):
            values = series(rng, len(cats), 5, 40)
            if kind == "grouped":
                ax.bar([j + i * width for j in range(len(cats))], values, width, label=group)
            else:
                ax.bar(range(len(cats)), values, 0.6, bottom=bottom, label=group)
                bottom = [b + v for b, v in zip(bottom, values, strict=True)]
        ax.set_xticks([j + (0.4 - width / 2 if kind == "grouped" else 0) for j in range(len(cats))], cats)
        _mpl_legend(ax, rng)
    elif kind == "line":
        years = list(range(2010, 2010 + rng.randrange(6, 14)))
        for name in rng.sample(REGIONS, rng.randrange(1, 4)):
            ax.plot(years, series(rng, len(years)), marker=rng.choice(["o", "s", ""]), label=name)
        xlabel = "Year"
        _mpl_legend(ax, rng)
    else:  # scatter
        n = rng.randrange(20, 80)
        ax.scatter(series(rng, n), series(rng, n), s=12, c=series(rng, n), cmap="viridis")
        xlabel = "Price index"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Region" if kind == "hbar" else unit.capitalize())
    ax.tick_params(labelsize=7)
    if rng.random() < 0.4:
        ax.grid(alpha=0.4)
    return [title, xlabel]


def _mpl_legend(ax: Any, rng: random.Random) -> None:
    if rng.random() < 0.3:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside the axes, right
    else:
        ax.legend(fontsize=7, loc="best")


def _grid(n: int, rng: random.Random) -> tuple[int, int]:
    if n == 1:
        return 1, 1
    if n == 2:
        return rng.choice([(2, 1), (1, 2)])
    if n == 3:
        return rng.choice([(3, 1), (2, 2)])
    return 2, 2


def _wrap(text: str, width_pt: float, size: float) -> list[str]:
    return textwrap.wrap(text, max(int(width_pt / (size * 0.6)), 10), break_on_hyphens=False, break_long_words=False)


def write_mpl_pdf(path: Path, rng: random.Random, pages: int) -> FileTruth:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    truth = FileTruth(path.name)
    labels = Labels(rng)
    size = rng.choice([(612.0, 792.0), (595.0, 842.0)])
    fonttype = rng.choice([3, 42])
    with plt.rc_context({"pdf.fonttype": fonttype, "font.size": 8}), PdfPages(path) as pdf:
        for number in range(1, pages + 1):
            fig = plt.figure(figsize=(size[0] / 72, size[1] / 72))
            fig.dpi = 72  # display units are points
            truth.pages.append(_mpl_page(fig, rng, labels, number, size))
            pdf.savefig(fig)
            plt.close(fig)
    return truth


def _mpl_page(fig: Any, rng: random.Random, labels: Labels, number: int, size: tuple[float, float]) -> PageTruth:
    from matplotlib.lines import Line2D

    width, height = size
    page = PageTruth(number, "matplotlib", size)
    fig.text(MARGIN / width, 1 - 36 / height, f"Operations review {2020 + number % 4}", fontsize=8)
    fig.text(1 - MARGIN / width, 28 / height, str(number), fontsize=8, ha="right")
    fig.add_artist(Line2D([MARGIN / width, 1 - MARGIN / width], [1 - 42 / height] * 2, lw=0.6, color="black"))
    top, bottom = 56.0, height - 50
    intro = _wrap(paragraph(rng, rng.randrange(2, 5)), width - 2 * MARGIN, 8.5) if rng.random() < 0.7 else []
    if intro:
        fig.text(MARGIN / width, 1 - top / height, "\n".join(intro), fontsize=8.5, va="top", linespacing=1.4)
        top += len(intro) * 8.5 * 1.4 + 16
    n = rng.choice([1, 1, 2, 2, 3, 4])
    rows, cols = _grid(n, rng)
    refs_height = 48.0
    cell_h = (bottom - refs_height - top) / rows
    cell_w = (width - 2 * MARGIN - 24 * (cols - 1)) / cols
    renderer = fig.canvas.get_renderer()
    for i in range(n):
        r, c = divmod(i, cols)
        cell = (
            MARGIN + c * (cell_w + 24),
            top + r * cell_h,
            MARGIN + c * (cell_w + 24) + cell_w,
            top + (r + 1) * cell_h,
        )
        page.figures.append(_mpl_figure(fig, renderer, rng, labels, cell, size))
    labelled = [f for f in page.figures if f.label]
    for figure in rng.sample(labelled, min(len(labelled), 2)):  # at most two sentences: three lines at most
        figure.references.append(reference(rng, figure.label or ""))
    refs = " ".join(r for f in page.figures for r in f.references)
    if refs:
        lines = _wrap(refs, width - 2 * MARGIN, 8.5)
        fig.text(MARGIN / width, 1 - (bottom - refs_height + 8) / height, "\n".join(lines), fontsize=8.5, va="top")
    return page


def _mpl_figure(
    fig: Any, renderer: Any, rng: random.Random, labels: Labels, cell: Box, size: tuple[float, float]
) -> FigureTruth:
    """A chart in `cell` (top-left points) with its caption above or below; the truth box is its tight bbox."""
    width, height = size
    label, caption = labels.figure(long=rng.random() < 0.25)
    above = rng.random() < 0.3
    cap_size = rng.choice([8.0, 8.5, 9.0])
    lines = _wrap(caption, cell[2] - cell[0], cap_size) if caption else []
    reserve = len(lines) * cap_size * 1.25 + 10 if lines else 0
    frac, center = rng.uniform(0.65, 1.0), rng.random() < 0.5  # chart and caption both centred in the cell, or not
    x0 = cell[0] + (cell[2] - cell[0]) * (1 - frac) * (0.5 if center else 0.0)
    region = (x0, cell[1] + (reserve if above else 0) + 4, x0 + (cell[2] - cell[0]) * frac, cell[3] - 14)
    region = (region[0], region[1], region[2], region[3] - (0 if above else reserve))
    ax = fig.add_axes(_axes_rect(region, (40, 22, 10, 30), size))
    kind = rng.choice(MPL_CHARTS)
    words = draw_mpl_chart(ax, rng, kind)
    for _ in range(3):  # shrink the axes until title, labels and legend fit the region
        tight = _tight_box(ax, renderer, height)
        inset = [max(0.0, region[0] - tight[0]), max(0.0, region[1] - tight[1])]
        inset += [max(0.0, tight[2] - region[2]), max(0.0, tight[3] - region[3])]
        if max(inset) < 0.5:
            break
        box = _top_left(ax.get_position().transformed(fig.transFigure), height)
        box = (box[0] + inset[0], box[1] + inset[1], box[2] - inset[2], box[3] - inset[3])
        ax.set_position(_axes_rect(box, (0, 0, 0, 0), size))
    tight = _tight_box(ax, renderer, height)
    if lines:
        gap = rng.uniform(6, 12)
        y = tight[1] - gap if above else tight[3] + gap
        x = (cell[0] + cell[2]) / 2 if center else cell[0]
        fig.text(
            x / width,
            1 - y / height,
            "\n".join(lines),
            fontsize=cap_size,
            va="bottom" if above else "top",
            ha="center" if center else "left",
            multialignment="center" if center else "left",
            linespacing=1.25,
        )
    return FigureTruth(tight, label, normalize(caption) or None, True, kind, words)


def _axes_rect(box: Box, insets: tuple[float, float, float, float], size: tuple[float, float]) -> list[float]:
    """Figure-fraction [left, bottom, width, height] of a top-left box less (left, top, right, bottom) insets."""
    width, height = size
    x0, top, x1, bottom = box[0] + insets[0], box[1] + insets[1], box[2] - insets[2], box[3] - insets[3]
    return [x0 / width, 1 - bottom / height, (x1 - x0) / width, (bottom - top) / height]


def _tight_box(ax: Any, renderer: Any, height: float) -> Box:
    """The axes' tight bbox as drawn (after a pie's equal aspect has shrunk the axes); without a frame (a pie), what
    its patches and texts cover, not the empty axes around them."""
    from matplotlib.transforms import Bbox

    ax.apply_aspect()
    if ax.get_frame_on():
        return _top_left(ax.get_tightbbox(renderer), height)
    artists = [*ax.patches, *ax.texts, ax.title]
    return _top_left(Bbox.union([a.get_window_extent(renderer) for a in artists if a.get_visible()]), height)


def _top_left(bbox: Any, height: float) -> Box:
    return (float(bbox.x0), height - float(bbox.y1), float(bbox.x1), height - float(bbox.y0))


# ------------------------------------------------------------------------------------------------------ reportlab

RL_CHARTS = ("bar", "stacked", "hbar", "line", "lineplot", "pie")


@dataclass
class Art:
    """Something a figure shows, ready to draw with its bottom-left corner at (x, y) of a reportlab canvas."""

    width: float
    height: float
    draw: Callable[[Any, float, float], None]
    bounds: tuple[float, float, float, float]
    """What it really covers, relative to (x, y), y up: (x0, y0, x1, y1)."""
    vector: bool
    chart: str
    words: list[str]


def rl_chart(kind: str, width: float, height: float, rng: random.Random) -> Art:
    """A reportlab.graphics chart with a title (and an axis title or a legend) filling width x height."""
    from reportlab.graphics import renderPDF
    from reportlab.graphics.shapes import Drawing, String

    drawing = Drawing(width, height)
    metric, unit = rng.choice(METRICS)
    title = f"{metric}, {unit}"
    drawing.add(String(width / 2, height - 11, title, fontName="Helvetica-Bold", fontSize=8.5, textAnchor="middle"))
    cats = rng.sample(REGIONS, rng.randrange(3, 6))
    words = [title]
    if kind == "pie":
        _rl_pie(drawing, cats, rng)
    else:
        legend = _rl_plot(drawing, kind, cats, rng)
        if not legend:
            axis = {"lineplot": "Year", "hbar": unit.capitalize()}.get(kind) or rng.choice(["Sales region", "Region"])
            drawing.add(String(width / 2, 3, axis, fontName="Helvetica", fontSize=7, textAnchor="middle"))
            words.append(axis)
    left, bottom, right, top = drawing.getBounds()  # placed by what it covers, not by its nominal size

    def draw(canvas: Any, x: float, y: float) -> None:
        renderPDF.draw(drawing, canvas, x - left, y - bottom)

    return Art(right - left, top - bottom, draw, (0, 0, right - left, top - bottom), True, kind, words)


def _rl_plot(drawing: Any, kind: str, cats: list[str], rng: random.Random) -> bool:
    """Bars or lines in `drawing`, a legend at the right for several series; whether it drew a legend."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart, VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.linecharts import HorizontalLineChart
    from reportlab.graphics.charts.lineplots import LinePlot
    from reportlab.lib import colors

    palette = [colors.HexColor(c) for c in ("#4472c4", "#ed7d31", "#a5a5a5", "#70ad47", "#5b9bd5")]
    n_series = 1 if kind == "hbar" else rng.randrange(1, 4)
    legend_w = 62 if n_series > 1 else 0
    chart: Any
    if kind == "lineplot":
        chart = LinePlot()
        years = list(range(2010, 2010 + rng.randrange(5, 12)))
        chart.data = [list(zip(years, series(rng, len(years)), strict=True)) for _ in range(n_series)]
        chart.xValueAxis.labels.fontSize = chart.yValueAxis.labels.fontSize = 6.5
    else:
        chart = {"line": HorizontalLineChart, "hbar": HorizontalBarChart}.get(kind, VerticalBarChart)()
        chart.data = [series(rng, len(cats), 5, 60) for _ in range(n_series)]
        chart.categoryAxis.categoryNames = cats
        chart.categoryAxis.labels.fontSize = chart.valueAxis.labels.fontSize = 6.5
        chart.valueAxis.valueMin = 0
        if kind == "stacked":
            chart.categoryAxis.style = "stacked"
    chart.x, chart.y = (52 if kind == "hbar" else 30), 24
    chart.width = drawing.width - chart.x - 10 - legend_w
    chart.height = drawing.height - chart.y - 22
    for i in range(n_series):
        style = chart.lines[i] if kind in ("line", "lineplot") else chart.bars[i]
        style.strokeColor = palette[i] if kind in ("line", "lineplot") else colors.black
        if kind not in ("line", "lineplot"):
            style.fillColor = palette[i]
        else:
            style.strokeWidth = 1.2
    drawing.add(chart)
    if n_series > 1:
        legend = Legend()
        legend.x, legend.y = drawing.width - legend_w + 4, chart.y + chart.height
        legend.fontName, legend.fontSize, legend.dx, legend.dy = "Helvetica", 7, 6, 6
        legend.colorNamePairs = [(palette[i], str(2021 + i)) for i in range(n_series)]
        drawing.add(legend)
    return n_series > 1


def _rl_pie(drawing: Any, cats: list[str], rng: random.Random) -> None:
    from reportlab.graphics.charts.piecharts import Pie
    from reportlab.lib import colors

    pie = Pie()
    size = min(drawing.width * 0.5, drawing.height - 50)
    pie.x, pie.y = (drawing.width - size) / 2, (drawing.height - 14 - size) / 2
    pie.width = pie.height = size
    pie.data = series(rng, len(cats), 5, 40)
    pie.labels = cats
    pie.slices.fontSize = 7
    pie.slices.strokeColor = colors.white
    for i, c in enumerate(("#4472c4", "#ed7d31", "#a5a5a5", "#70ad47", "#5b9bd5")[: len(cats)]):
        pie.slices[i].fillColor = colors.HexColor(c)
    drawing.add(pie)


def photo(rng: random.Random, size: tuple[int, int] = (360, 240)) -> Any:
    """A photo-like RGB image: sky gradient, hills, a sun, sensor noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    w, h = size
    gen = np.random.default_rng(rng.randrange(2**32))
    sky = np.linspace([90, 140, 220], [200, 225, 245], h)[:, None, :].repeat(w, axis=1)
    image = Image.fromarray(sky.astype("uint8"))
    draw = ImageDraw.Draw(image)
    sun = rng.randrange(w // 4, w - w // 4)
    draw.ellipse((sun - 18, 20, sun + 18, 56), fill=(250, 220, 120))
    for shade in (110, 80, 50):
        points = [
            (x, h * 0.55 + 30 * math.sin(x / rng.uniform(20, 60) + shade) + (120 - shade)) for x in range(0, w, 8)
        ]
        draw.polygon([(0, h), *points, (w, h)], fill=(40, shade + 40, 50))
    noisy = np.asarray(image.filter(ImageFilter.GaussianBlur(1)), dtype=np.int16) + gen.integers(-14, 14, (h, w, 3))
    return Image.fromarray(noisy.clip(0, 255).astype("uint8"))


def raster_art(kind: str, width: float, rng: random.Random) -> Art:
    """A photo, or a matplotlib chart saved as PNG: placed `width` wide, as tall as its aspect says."""
    from reportlab.lib.utils import ImageReader

    image = photo(rng, (rng.randrange(300, 480), rng.randrange(200, 300))) if kind == "photo" else _raster_chart(rng)
    height = width * image.height / image.width
    reader = ImageReader(image)
    return Art(
        width, height, lambda c, x, y: c.drawImage(reader, x, y, width, height), (0, 0, width, height), False, kind, []
    )


def _raster_chart(rng: random.Random) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, ax = plt.subplots(figsize=(4.5, 3), dpi=110)
    draw_mpl_chart(ax, rng, rng.choice(MPL_CHARTS))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight", pad_inches=0.03)
    plt.close(fig)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


@dataclass
class Column:
    """Where a reportlab page still has room: x, width, and the free band [top, bottom] (display points)."""

    x: float
    width: float
    top: float
    bottom: float

    @property
    def room(self) -> float:
        return self.bottom - self.top


class Sheet:
    """One reportlab page being laid out in display coordinates (top-left origin), recording its truth."""

    def __init__(self, canvas: Any, page: PageTruth, labels: Labels, rng: random.Random, styles: Any) -> None:
        self.canvas, self.page, self.labels, self.rng, self.styles = canvas, page, labels, rng, styles
        self.width, self.height = page.size
        self.caption = rng.choice(["caption", "caption", "caption-centred"])

    def y(self, top: float, height: float = 0.0) -> float:
        """Canvas y of the bottom of something `height` tall whose top is at display `top`."""
        return self.height - top - height

    def paragraph(self, col: Column, markup: str, style: str = "body") -> bool:
        from reportlab.platypus import Paragraph

        para = Paragraph(markup, self.styles[style])
        _, h = para.wrap(col.width, col.room)
        if h > col.room:
            return False
        para.drawOn(self.canvas, col.x, self.y(col.top, h))
        col.top += h + self.styles[style].spaceAfter
        return True

    def fill(self, col: Column, underline: bool = False) -> None:
        """Body paragraphs until the column is full."""
        while col.room > 30:
            for n in range(self.rng.randrange(3, 7), 0, -1):
                if self.paragraph(col, self._body(n, underline)):
                    break
            else:
                return

    def _body(self, n: int, underline: bool) -> str:
        parts = [escape(sentence(self.rng)) for _ in range(n)]
        if underline or self.rng.random() < 0.2:
            i = self.rng.randrange(n)
            words = parts[i].split(" ")
            parts[i] = " ".join([*words[:2], f"<u>{' '.join(words[2:4])}</u>", *words[4:]])
        return " ".join(parts)

    def references(self, col: Column, figures: Sequence[FigureTruth]) -> None:
        """A body paragraph that refers to the labelled figures just placed (recorded when it fits)."""
        labelled = [f for f in figures if f.label]
        refs = [reference(self.rng, f.label or "") for f in labelled]
        if not refs:
            return
        if self.rng.random() < 0.15:  # starts with a label but is no caption: "Figure 3 shows ..."
            refs[0] = f"{labelled[0].label} shows how the {self.rng.choice(METRICS)[0].lower()} developed."
        text = " ".join([sentence(self.rng), *refs, sentence(self.rng)] if self.rng.random() < 0.6 else refs)
        if self.paragraph(col, escape(text)):
            for f, r in zip(labelled, refs, strict=True):
                f.references.append(r)

    def figures(self, col: Column, kinds: Sequence[str], frac: float = 1.0, aspect: float = 0.6) -> list[FigureTruth]:
        """A row of charts or images across the column, captions all above or all below; [] when no room."""
        rng, gap = self.rng, 18.0
        width = (col.width - gap * (len(kinds) - 1)) / len(kinds) * (frac if len(kinds) == 1 else 1.0)
        arts = [
            raster_art(k, width, rng) if k in ("photo", "raster-chart") else rl_chart(k, width, width * aspect, rng)
            for k in kinds
        ]
        if max(a.height for a in arts) + 56 > col.room:  # a caption is at most 4 lines this wide
            return []
        above = rng.random() < 0.3
        x = col.x + ((col.width - width) * rng.choice([0.0, 0.5]) if len(kinds) == 1 else 0.0)
        placed, block = [], 0.0
        for art in arts:
            figure, used = self._figure(art, x, width, col.top, above, long=rng.random() < 0.3)
            placed.append(figure)
            block = max(block, used)
            x += width + gap
        col.top += block + 14
        self.page.figures += placed
        return placed

    def _figure(
        self, art: Art, x: float, width: float, top: float, above: bool, long: bool
    ) -> tuple[FigureTruth, float]:
        """`art` in the band `width` wide at x (centred in it under a centred caption), its caption as wide."""
        from reportlab.platypus import Paragraph

        label, caption = self.labels.figure(long=long)
        cap_h, gap = 0.0, self.rng.uniform(6, 12)
        para = None
        if label and caption:
            bold = self.rng.random() < 0.5
            head = f"<b>{escape(label)}</b>" if bold else escape(label)
            para = Paragraph(head + escape(caption[len(label) :]), self.styles[self.caption])
            cap_h = para.wrap(width, 200)[1]
        art_top = top + (cap_h + gap if para and above else 0)
        art_x = x + (width - art.width) / 2 if self.caption == "caption-centred" else x
        art.draw(self.canvas, art_x, self.y(art_top, art.height))
        if para is not None:
            para.drawOn(self.canvas, x, self.y(top if above else art_top + art.height + gap, cap_h))
        b = art.bounds
        bbox = (art_x + b[0], art_top + art.height - b[3], art_x + b[2], art_top + art.height - b[1])
        figure = FigureTruth(bbox, label, normalize(caption) or None, art.vector, art.chart, list(art.words))
        return figure, art.height + (cap_h + gap if para else 0)

    def table(self, col: Column) -> TableTruth | None:
        from reportlab.lib import colors
        from reportlab.platypus import Paragraph, Table

        rng = self.rng
        n_rows, n_cols = rng.randrange(3, 8), rng.randrange(3, 6)
        first = rng.randrange(2015, 2020)
        header = [rng.choice(["Region", "Market", "Plant"])] + [str(first + i) for i in range(n_cols - 1)]
        body = [
            [name] + [f"{rng.uniform(1, 5000):,.1f}" for _ in range(n_cols - 1)] for name in rng.sample(REGIONS, n_rows)
        ]
        style = [
            ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("FONTSIZE", (0, 0), (-1, -1), 8),
            ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ]
        if rng.random() < 0.6:
            style.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde3ec")))
        if rng.random() < 0.4:
            style.append(("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f2f2f2")]))
        table = Table([header, *body], style=style)
        tw, th = table.wrap(col.width, col.room)
        label, caption = self.labels.table()
        para = Paragraph(escape(caption), self.styles["caption"])
        cap_h = para.wrap(max(tw, col.width * 0.7), 200)[1]
        if cap_h + 6 + th > col.room:
            self.labels.tables -= 1
            return None
        x = col.x + (col.width - tw) * rng.choice([0.0, 0.5])
        para.drawOn(self.canvas, x, self.y(col.top, cap_h))
        table.drawOn(self.canvas, x, self.y(col.top + cap_h + 6, th))
        truth = TableTruth(
            (x, col.top + cap_h + 6, x + tw, col.top + cap_h + 6 + th),
            label,
            normalize(caption),
            n_rows + 1,
            n_cols,
            header,
        )
        col.top += cap_h + 6 + th + 14
        self.page.tables.append(truth)
        return truth

    def note(self, col: Column) -> None:
        """A boxed, shaded note: a rectangle with text in it that is no figure."""
        from reportlab.platypus import Paragraph

        para = Paragraph(f"<b>Note.</b> {escape(paragraph(self.rng, 2))}", self.styles["body"])
        _, h = para.wrap(col.width - 16, col.room)
        if h + 30 > col.room:
            return
        self.canvas.setFillColorRGB(0.95, 0.95, 0.9)
        self.canvas.rect(col.x, self.y(col.top, h + 12), col.width, h + 12, fill=1, stroke=1)
        self.canvas.setFillColorRGB(0, 0, 0)
        para.drawOn(self.canvas, col.x + 8, self.y(col.top + 6, h))
        col.top += h + 24


def rl_styles() -> dict[str, Any]:
    from reportlab.lib.enums import TA_CENTER, TA_JUSTIFY
    from reportlab.lib.styles import ParagraphStyle

    return {
        "body": ParagraphStyle(
            "body", fontName="Helvetica", fontSize=9.5, leading=12.5, alignment=TA_JUSTIFY, spaceAfter=8
        ),
        "heading": ParagraphStyle("heading", fontName="Helvetica-Bold", fontSize=13, leading=16, spaceAfter=10),
        "caption": ParagraphStyle("caption", fontName="Helvetica", fontSize=8.5, leading=10.5, spaceAfter=0),
        "caption-centred": ParagraphStyle(
            "caption-centred", fontName="Helvetica-Oblique", fontSize=8.5, leading=10.5, alignment=TA_CENTER
        ),
        "bullet": ParagraphStyle(
            "bullet", fontName="Helvetica", fontSize=9.5, leading=12.5, leftIndent=14, bulletIndent=4, spaceAfter=3
        ),
    }


def _furniture(sheet: Sheet, title: str) -> None:
    """Running header and footer, each with a rule across the page, and the page number."""
    c, w, h = sheet.canvas, sheet.width, sheet.height
    c.setFont("Helvetica", 8)
    c.drawString(MARGIN, h - 36, title)
    c.drawRightString(w - MARGIN, h - 36, f"Section {1 + (sheet.page.number or 1) // 3}")
    c.setLineWidth(0.6)
    c.line(MARGIN, h - 42, w - MARGIN, h - 42)
    c.line(MARGIN, 46, w - MARGIN, 46)
    c.drawCentredString(w / 2, 34, f"Page {sheet.page.number}")


def _content(sheet: Sheet) -> Column:
    return Column(MARGIN, sheet.width - 2 * MARGIN, 60.0, sheet.height - 56)


def _heading(sheet: Sheet, col: Column) -> None:
    sheet.paragraph(col, f"{sheet.page.number}. {escape(sheet.rng.choice(OBJECTS).capitalize())}", "heading")


def _split(col: Column, n: int = 2, gap: float = 22.0) -> list[Column]:
    width = (col.width - gap * (n - 1)) / n
    return [Column(col.x + i * (width + gap), width, col.top, col.bottom) for i in range(n)]


def _one_column(sheet: Sheet) -> None:
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    sheet.paragraph(col, escape(paragraph(rng, rng.randrange(2, 5))))
    for _ in range(rng.randrange(1, 3)):
        kinds = rng.sample(RL_CHARTS, rng.choice([1, 1, 2]))
        sheet.references(col, sheet.figures(col, kinds, rng.uniform(0.55, 0.9), rng.uniform(0.45, 0.65)))
    sheet.fill(col)


def _two_column(sheet: Sheet) -> None:
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    if rng.random() < 0.35:  # a figure across both columns
        sheet.figures(col, [rng.choice(RL_CHARTS)], rng.uniform(0.6, 0.9), 0.4)
    for column in _split(col):
        sheet.paragraph(column, escape(paragraph(rng, rng.randrange(2, 6))))
        sheet.references(column, sheet.figures(column, [rng.choice(RL_CHARTS)], 1.0, rng.uniform(0.6, 0.8)))
        sheet.fill(column)


def _table_page(sheet: Sheet) -> None:
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    sheet.paragraph(col, escape(paragraph(rng, 3)))
    for _ in range(rng.randrange(1, 3)):
        table = sheet.table(col)
        if table:
            sheet.paragraph(col, escape(f"{table.label} lists the figures by region. {sentence(rng)}"))
    sheet.fill(col)


def _raster_page(sheet: Sheet) -> None:
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    sheet.paragraph(col, escape(paragraph(rng, 2)))
    sheet.references(col, sheet.figures(col, ["photo"], rng.uniform(0.45, 0.7)))
    sheet.paragraph(col, escape(paragraph(rng, 2)))
    sheet.references(col, sheet.figures(col, ["raster-chart"], rng.uniform(0.5, 0.75)))
    sheet.fill(col)


def _text_page(sheet: Sheet) -> None:
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    sheet.paragraph(col, sheet._body(4, underline=True))
    for _ in range(rng.randrange(3, 6)):
        sheet.paragraph(col, f"<bullet>&bull;</bullet>{escape(sentence(rng))}", "bullet")
    sheet.canvas.line(col.x, sheet.y(col.top + 4), col.x + col.width, sheet.y(col.top + 4))
    col.top += 14
    if rng.random() < 0.5:
        sheet.note(col)
    sheet.fill(col, underline=True)


def _mixed_page(sheet: Sheet) -> None:
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    sheet.references(col, sheet.figures(col, [rng.choice(RL_CHARTS)], rng.uniform(0.5, 0.8)))
    sheet.table(col)
    sheet.fill(col)


def _rotated_page(sheet: Sheet) -> None:
    """Displayed as landscape: a wide chart and a table side by side."""
    col, rng = _content(sheet), sheet.rng
    _heading(sheet, col)
    left, right = _split(col, 2, 30)
    sheet.references(left, sheet.figures(left, [rng.choice(RL_CHARTS)], 1.0, 0.65))
    sheet.fill(left)
    sheet.table(right)
    sheet.fill(right)


RL_PAGES: dict[str, Callable[[Sheet], None]] = {
    "one-column": _one_column,
    "two-column": _two_column,
    "table": _table_page,
    "raster": _raster_page,
    "text-only": _text_page,
    "rotated": _rotated_page,
    "mixed": _mixed_page,
}


def _page_plan(rng: random.Random, pages: int) -> list[str]:
    """Every page type once (when there are pages enough), the rest drawn at random; the rotated one not first."""
    base = ["one-column", "two-column", "table", "raster", "text-only", "rotated"][:pages]
    kinds = ["one-column", "one-column", "two-column", "table", "raster", "mixed", "text-only"]
    rest = rng.choices(kinds, k=pages - len(base))
    plan = base + rest
    rng.shuffle(plan)
    if plan[0] == "rotated" and len(plan) > 1:
        plan[0], plan[1] = plan[1], plan[0]
    return plan


def write_rl_pdf(path: Path, rng: random.Random, pages: int) -> FileTruth:
    from reportlab.pdfgen.canvas import Canvas

    truth = FileTruth(path.name)
    labels, styles = Labels(rng), rl_styles()
    portrait = rng.choice([(612.0, 792.0), (595.0, 842.0)])
    title = f"{rng.choice(REGIONS)} operations report {rng.randrange(2018, 2025)}"
    canvas = Canvas(str(path), pagesize=portrait)
    for number, layout in enumerate(_page_plan(rng, pages), start=1):
        rotated = layout == "rotated"
        size = (portrait[1], portrait[0]) if rotated else portrait
        canvas.setPageSize(size)
        canvas.setPageRotation(90 if rotated else 0)  # reportlab swaps the MediaBox, so `size` is what is displayed
        if rotated:  # draw upright in display coordinates: display (u, v) is user space (height - v, u)
            canvas.saveState()
            canvas.translate(size[1], 0)
            canvas.rotate(90)
        page = PageTruth(number, layout, size, 90 if rotated else 0)
        sheet = Sheet(canvas, page, labels, rng, styles)
        _furniture(sheet, title)
        RL_PAGES[layout](sheet)
        if rotated:
            canvas.restoreState()
        canvas.showPage()
        truth.pages.append(page)
    canvas.save()
    return truth


# ----------------------------------------------------------------------------------------------------------- HTML


def svg_chart(rng: random.Random) -> tuple[str, list[str]]:
    """An inline SVG bar chart with a title, axis and category labels."""
    metric, unit = rng.choice(METRICS)
    title = f"{metric} ({unit})"
    cats = rng.sample(REGIONS, rng.randrange(3, 6))
    values = series(rng, len(cats))
    w, h, left, base = 420, 260, 40, 220
    step = (w - left - 20) / len(cats)
    parts = [f'<text x="{w / 2}" y="18" text-anchor="middle" font-size="13">{escape(title)}</text>']
    parts.append(f'<line x1="{left}" y1="{base}" x2="{w - 10}" y2="{base}" stroke="black"/>')
    parts.append(f'<line x1="{left}" y1="30" x2="{left}" y2="{base}" stroke="black"/>')
    for i, (cat, value) in enumerate(zip(cats, values, strict=True)):
        x, bar = left + 10 + i * step, value / 100 * (base - 40)
        parts.append(
            f'<rect x="{x:.1f}" y="{base - bar:.1f}" width="{step * 0.6:.1f}" height="{bar:.1f}" fill="#4472c4"/>'
        )
        parts.append(f'<text x="{x + step * 0.3:.1f}" y="{base + 16}" text-anchor="middle" font-size="11">{cat}</text>')
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">{"".join(parts)}</svg>'
    )
    return svg, [title]


def write_html(path: Path, rng: random.Random, figures: int = 2) -> FileTruth:
    labels = Labels(rng, unlabelled=0.0)
    labels.style = ("Figure {n}", ":")
    page = PageTruth(None, "html", (0.0, 0.0))
    body = [f"<h1>{escape(rng.choice(OBJECTS).capitalize())}</h1>", f"<p>{escape(paragraph(rng, 3))}</p>"]
    for _ in range(figures):
        svg, words = svg_chart(rng)
        label, caption = labels.figure()
        ref = reference(rng, label or "")
        body.append(f"<figure>{svg}<figcaption>{escape(caption or '')}</figcaption></figure>")
        body.append(f"<p>{escape(sentence(rng))} {escape(ref)}</p>")
        page.figures.append(FigureTruth(None, label, normalize(caption), True, "svg-bar", words, [ref]))
    label, caption = labels.table()
    header = ["Region", "2022", "2023"]
    rows = [[r, f"{rng.uniform(1, 900):.1f}", f"{rng.uniform(1, 900):.1f}"] for r in rng.sample(REGIONS, 4)]
    cells = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    body.append(
        f"<table><caption>{escape(caption)}</caption><thead><tr>{''.join(f'<th>{h}</th>' for h in header)}</tr>"
        f"</thead><tbody>{cells}</tbody></table>"
    )
    page.tables.append(TableTruth(None, label, normalize(caption), len(rows) + 1, len(header), header))
    path.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>Report</title></head><body>"
        f"{''.join(body)}</body></html>"
    )
    return FileTruth(path.name, [page])


# ------------------------------------------------------------------------------------------------- the corpus


def make_corpus(folder: Path, seed: int, pages: int = 12) -> Corpus:
    """A matplotlib PDF (a third of `pages`), a reportlab PDF (the rest) and an HTML page, with folder/truth.json."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    mpl_pages = max(1, pages // 3)
    files = [
        write_mpl_pdf(folder / f"charts-{seed}.pdf", rng, mpl_pages),
        write_rl_pdf(folder / f"report-{seed}.pdf", rng, max(1, pages - mpl_pages)),
        write_html(folder / f"page-{seed}.html", rng),
    ]
    for truth in files[:2]:
        fit_to_ink(folder / truth.name, truth)
    corpus = Corpus(folder, seed, files)
    corpus.save()
    return corpus


def make_long_pdf(path: Path, pages: int = 300, seed: int = 0) -> FileTruth:
    """A long reportlab PDF: a chart or two (and now and then a table) on most pages, every tenth page text only.
    Boxes are layout boxes (not fitted to ink), so it is quick: about 10 s for 300 pages."""
    from reportlab.pdfgen.canvas import Canvas

    rng = random.Random(seed)
    truth, labels, styles = FileTruth(path.name), Labels(rng), rl_styles()
    canvas = Canvas(str(path), pagesize=(612.0, 792.0))
    cycle = [
        "one-column",
        "table",
        "one-column",
        "mixed",
        "two-column",
        "one-column",
        "mixed",
        "one-column",
        "two-column",
        "text-only",
    ]
    for number in range(1, pages + 1):
        layout = cycle[(number - 1) % len(cycle)]
        sheet = Sheet(canvas, PageTruth(number, layout, (612.0, 792.0)), labels, rng, styles)
        _furniture(sheet, "Long report")
        RL_PAGES[layout](sheet)
        canvas.showPage()
        truth.pages.append(sheet.page)
    canvas.save()
    return truth


def fit_to_ink(path: Path, truth: FileTruth, scale: float = 3.0, margin: float = 4.0) -> None:
    """Shrink each vector figure's layout box to the ink inside it (looking `margin` points beyond it) on the
    rendered page; fails loudly when a box holds no ink (the truth would be wrong) or the page renders at another
    size than recorded (the rotation would be wrong)."""
    import numpy as np
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        for page in truth.pages:
            figures = [f for f in page.figures if f.vector and f.bbox]
            if not figures or page.number is None:
                continue
            bitmap = pdf[page.number - 1].render(scale=scale, grayscale=True)
            gray = np.asarray(bitmap.to_pil().convert("L"))
            expected = (round(page.size[1] * scale), round(page.size[0] * scale))
            if abs(gray.shape[0] - expected[0]) > 1 or abs(gray.shape[1] - expected[1]) > 1:
                raise AssertionError(f"{path.name} page {page.number} renders {gray.shape}, truth says {expected}")
            for figure in figures:
                figure.bbox = _ink_box(gray, figure.bbox or (0, 0, 0, 0), scale, margin, f"{path.name} p{page.number}")
    finally:
        pdf.close()


def _ink_box(gray: Any, box: Box, scale: float, margin: float, where: str) -> Box:
    import numpy as np

    h, w = gray.shape
    x0, y0 = max(int((box[0] - margin) * scale), 0), max(int((box[1] - margin) * scale), 0)
    x1, y1 = min(math.ceil((box[2] + margin) * scale), w), min(math.ceil((box[3] + margin) * scale), h)
    ink = gray[y0:y1, x0:x1] < 235
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        raise AssertionError(f"{where}: no ink in the truth box {box}")
    fitted = (
        (x0 + cols[0]) / scale,
        (y0 + rows[0]) / scale,
        (x0 + cols[-1] + 1) / scale,
        (y0 + rows[-1] + 1) / scale,
    )
    return (
        round(float(fitted[0]), 2),
        round(float(fitted[1]), 2),
        round(float(fitted[2]), 2),
        round(float(fitted[3]), 2),
    )


def draw_boxes(pdf: Path, number: int, truth: Sequence[Box], predicted: Sequence[Box] = (), scale: float = 1.5) -> Any:
    """A page rendered with truth boxes in red and predicted ones in blue (PIL image), to look at."""
    import pypdfium2 as pdfium
    from PIL import ImageDraw

    document = pdfium.PdfDocument(pdf)
    try:
        image = document[number - 1].render(scale=scale).to_pil().convert("RGB")
    finally:
        document.close()
    draw = ImageDraw.Draw(image)
    for boxes, colour in ((truth, (220, 0, 0)), (predicted, (0, 90, 255))):
        for box in boxes:
            draw.rectangle([v * scale for v in box], outline=colour, width=1)
    return image


# ------------------------------------------------------------------------------------------------------- scoring


def match_boxes(
    truth: Sequence[Box | None], predicted: Sequence[Box | None], threshold: float = 0.5
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching, best IoU first: (truth index, predicted index, IoU) of pairs at `threshold` or
    above. A missing box matches nothing."""
    pairs = sorted(
        ((iou(t, p), i, j) for i, t in enumerate(truth) for j, p in enumerate(predicted) if t and p),
        reverse=True,
    )
    used_t: set[int] = set()
    used_p: set[int] = set()
    matches = []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_t and j not in used_p:
            used_t.add(i)
            used_p.add(j)
            matches.append((i, j, value))
    return matches


@dataclass
class Tally:
    """Counts over some pages (all of them, or those of one layout)."""

    pages: int = 0
    figures: int = 0
    predicted: int = 0
    matched: int = 0
    captioned: int = 0
    captions_right: int = 0
    labels_right: int = 0
    ious: list[float] = field(default_factory=list)
    words: int = 0
    words_found: int = 0
    references: int = 0
    references_found: int = 0
    tables: int = 0
    tables_predicted: int = 0
    tables_matched: int = 0
    table_captions_right: int = 0
    header_cells_found: int = 0
    header_cells: int = 0

    @property
    def recall(self) -> float:
        return self.matched / self.figures if self.figures else 1.0

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else (1.0 if not self.figures else 0.0)

    @property
    def caption_rate(self) -> float:
        return self.captions_right / self.captioned if self.captioned else 1.0

    @property
    def median_iou(self) -> float:
        return statistics.median(self.ious) if self.ious else 0.0

    @property
    def table_recall(self) -> float:
        return self.tables_matched / self.tables if self.tables else 1.0

    def add(self, other: Tally) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class Score:
    total: Tally = field(default_factory=Tally)
    layouts: dict[str, Tally] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    """One line per miss, extra figure or wrong caption: 'report-1001.pdf p3 (rotated): missed Figure 2 ...'."""


def score(corpus: Corpus, extraction: Extraction) -> Score:
    """Extracted items judged against the corpus's truth."""
    result = Score()
    for file in corpus.files:
        items = extraction.items.get(file.name, [])
        if file.name in extraction.errors:
            result.problems.append(f"{file.name}: extraction failed: {extraction.errors[file.name]}")
        for page in file.pages:
            tally = _page_tally(file.name, page, items, result.problems)
            result.total.add(tally)
            result.layouts.setdefault(page.layout, Tally()).add(tally)
    return result


def _page_tally(name: str, page: PageTruth, items: Sequence[Any], problems: list[str]) -> Tally:
    where = f"{name} p{page.number} ({page.layout})" if page.number else f"{name} ({page.layout})"
    on_page = [i for i in items if i.page == page.number]
    figures = [i for i in on_page if i.kind == "image"]
    tables = [i for i in on_page if i.kind == "table"]
    tally = Tally(pages=1, figures=len(page.figures), predicted=len(figures))
    tally.tables, tally.tables_predicted = len(page.tables), len(tables)
    if page.number is None:  # HTML: no boxes, matched by caption
        matches = _match_captions([f.caption for f in page.figures], figures)
        table_matches = _match_captions([t.caption for t in page.tables], tables)
    else:
        matches = match_boxes([f.bbox for f in page.figures], [i.bbox for i in figures])
        table_matches = match_boxes([t.bbox for t in page.tables], [i.bbox for i in tables])
    for i, j, value in matches:
        _judge_figure(tally, page.figures[i], figures[j], value, where, problems)
    for i, j, _ in table_matches:
        truth, item = page.tables[i], tables[j]
        tally.tables_matched += 1
        tally.table_captions_right += normalize(item.caption) == truth.caption
        tally.header_cells += len(truth.header)
        tally.header_cells_found += sum(cell in item.text for cell in truth.header)
    tally.matched = len(matches)
    for i in sorted(set(range(len(page.figures))) - {i for i, _, _ in matches}):
        f = page.figures[i]
        problems.append(f"{where}: missed {f.label or 'unlabelled'} {f.chart} at {_fmt(f.bbox)}")
    for j in sorted(set(range(len(figures))) - {j for _, j, _ in matches}):
        problems.append(f"{where}: extra figure at {_fmt(figures[j].bbox)} label={figures[j].label!r}")
    for i in sorted(set(range(len(page.tables))) - {i for i, _, _ in table_matches}):
        problems.append(f"{where}: missed table {page.tables[i].label} at {_fmt(page.tables[i].bbox)}")
    return tally


def _judge_figure(tally: Tally, truth: FigureTruth, item: Any, value: float, where: str, problems: list[str]) -> None:
    if truth.bbox is not None:
        tally.ious.append(value)
    tally.labels_right += item.label == truth.label
    text = normalize(item.text).lower()
    tally.words += len(truth.words)
    tally.words_found += sum(normalize(w).lower() in text for w in truth.words)
    tally.references += len(truth.references)
    tally.references_found += sum(normalize(r).lower() in text for r in truth.references)
    if truth.caption is None:
        return
    tally.captioned += 1
    if normalize(item.caption) == truth.caption:
        tally.captions_right += 1
    else:
        problems.append(f"{where}: {truth.label} caption {normalize(item.caption)[:90]!r} != {truth.caption[:90]!r}")


def _match_captions(captions: Sequence[str | None], items: Sequence[Any]) -> list[tuple[int, int, float]]:
    matches, used = [], set()
    for i, caption in enumerate(captions):
        for j, item in enumerate(items):
            if j not in used and caption and caption in normalize(f"{item.caption or ''} {item.text}"):
                matches.append((i, j, 1.0))
                used.add(j)
                break
    return matches


def _fmt(box: Box | None) -> str:
    return "(no box)" if box is None else "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


@dataclass
class Extraction:
    items: dict[str, list[Any]]
    """`indexer.items.Item`s by file name (none for a file that failed)."""
    errors: dict[str, str]
    """A failed file's one-line reason, by file name."""


def extract_corpus(corpus: Corpus, options: Any) -> Extraction:
    """`indexer.extract.extract_file` over every file of the corpus."""
    from mmrag.indexer.extract import extract_file, file_digest

    done = Extraction({}, {})
    for path in corpus.paths:
        result = extract_file(path, file_digest([path]), options)
        done.items[path.name] = result.items
        if result.error:
            done.errors[path.name] = result.error
    return done


def figure_boxes(pages: Iterable[PageTruth]) -> Iterable[tuple[PageTruth, Box]]:
    """Every recorded box (figures and tables) with its page."""
    for page in pages:
        for box in [f.bbox for f in page.figures] + [t.bbox for t in page.tables]:
            if box is not None:
                yield page, box
