"""Native Office charts (DrawingML chartSpace parts): their data read from the XML as text (chart_drawing draws it).

A chart part holds its type(s), title and series; each series names its categories and values by a worksheet
reference ('Sheet1'!$B$2:$B$5) and usually a cache of them. When the cache is missing (openpyxl writes references
only), the reference is read from the workbook's cells through a `CellReader`. Values are kept as the file writes
them ("12.5", never 12.499999): the text of a chart is its exact data. Date categories read as ISO dates and
multi-level categories as one label per point ("2024 Q1"), from a cache as from cells.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import IO, Any

from lxml import etree

from mmrag.indexer.items import BadFileError
from mmrag.indexer.office_package import check_zip, parse_xml, reason
from mmrag.indexer.reading import Deadline, TimeLimitError
from mmrag.indexer.tables import markdown_table

C = "http://schemas.openxmlformats.org/drawingml/2006/chart"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
NS = {"c": C, "a": A}

MAX_POINTS = 10_000
"""Points read per series (and cells read per reference)."""

_TYPES = {
    "barChart": "bar",
    "bar3DChart": "bar",
    "lineChart": "line",
    "line3DChart": "line",
    "stockChart": "line",
    "pieChart": "pie",
    "pie3DChart": "pie",
    "ofPieChart": "pie",
    "doughnutChart": "doughnut",
    "areaChart": "area",
    "area3DChart": "area",
    "scatterChart": "scatter",
    "bubbleChart": "scatter",
    "radarChart": "radar",
}

CellReader = Callable[[str, int, int, int, int], list[str]]
"""(sheet, first_row, first_col, last_row, last_col) -> the cells' texts, row by row (1-based, inclusive)."""

_REFERENCE = re.compile(
    r"^(?:'(?P<quoted>(?:[^']|'')+)'|(?P<plain>[^'!]+))!\$?(?P<c0>[A-Z]{1,3})\$?(?P<r0>\d+)"
    r"(?::\$?(?P<c1>[A-Z]{1,3})\$?(?P<r1>\d+))?$"
)


@dataclass
class Series:
    name: str
    categories: list[str]
    values: list[str]


@dataclass
class Chart:
    """What a chart shows: its type(s) ('bar' is horizontal, 'column' vertical), title and series."""

    types: list[str]
    title: str = ""
    category_title: str = ""
    series: list[Series] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return " and ".join(dict.fromkeys(self.types)) or "unknown"

    def text(self) -> str:
        """'Bar chart: Title' then one Markdown table per set of categories (the category axis title first),
        separated by blank lines."""
        head = f"{self.kind.capitalize()} chart"
        tables = []
        groups: dict[tuple[str, ...], list[Series]] = {}
        for s in self.series:
            groups.setdefault(tuple(s.categories), []).append(s)
        for categories, group in groups.items():
            n = max([len(categories)] + [len(s.values) for s in group])
            header = [self.category_title or ("X" if "scatter" in self.types else "Category")]
            rows = [header + [s.name or f"Series {i + 1}" for i, s in enumerate(group)]]
            for i in range(n):
                label = categories[i] if i < len(categories) else str(i + 1)
                rows.append([label] + [s.values[i] if i < len(s.values) else "" for s in group])
            tables.append(markdown_table(rows))
        return (f"{head}: {self.title}" if self.title else head) + "\n" + "\n\n".join(tables)


@dataclass(frozen=True)
class _Dates:
    """How a series' categories hold dates: Excel serial numbers counted from `epoch` (1900 or 1904 calendar),
    shown as dates when their format is a date format or, with `axis`, always (a date axis)."""

    epoch: datetime
    axis: bool


def read_chart(xml: bytes, part: str, cells: CellReader | None) -> Chart:
    """The chart of a chartSpace part; a reference without a cache is read through `cells` (when given)."""
    from openpyxl.utils.datetime import MAC_EPOCH, WINDOWS_EPOCH

    root = parse_xml(xml, part)
    plot = root.find("c:chart/c:plotArea", NS)
    if plot is None:
        raise BadFileError(f"{part} has no plot area")
    date1904 = root.find("c:date1904", NS)
    epoch = MAC_EPOCH if date1904 is not None and date1904.get("val", "1") in ("1", "true") else WINDOWS_EPOCH
    date_axes = {ax.get("val") for ax in plot.findall("c:dateAx/c:axId", NS)}
    chart = Chart(types=[], title=_title(root.find("c:chart/c:title", NS), cells))
    for group in plot:
        name = etree.QName(group).localname
        if name not in _TYPES:
            continue
        kind = _TYPES[name]
        direction = group.find("c:barDir", NS)
        if kind == "bar" and (direction is None or direction.get("val") != "bar"):
            kind = "column"
        chart.types.append(kind)
        dates = _Dates(epoch, axis=any(ax.get("val") in date_axes for ax in group.findall("c:axId", NS)))
        for ser in group.findall("c:ser", NS):
            chart.series.append(_series(ser, cells, dates))
    values = plot.findall("c:valAx", NS)[:1] if "scatter" in chart.types else []  # a scatter's X axis
    axes = plot.findall("c:catAx", NS) + plot.findall("c:dateAx", NS) + values
    titles = (_title(axis.find("c:title", NS), cells) for axis in axes)
    chart.category_title = next((title for title in titles if title), "")
    if not chart.series:
        raise BadFileError(f"{part} has no data series")
    return chart


def _series(ser: Any, cells: CellReader | None, dates: _Dates) -> Series:
    name_el = ser.find("c:tx", NS)
    names = _data(name_el, cells) if name_el is not None else []
    v = name_el.find("c:v", NS) if name_el is not None else None
    name = " ".join(x for x in names if x) if names else (v.text or "" if v is not None else "")
    cat = ser.find("c:cat", NS)
    if cat is None:
        cat = ser.find("c:xVal", NS)
    val = ser.find("c:val", NS)
    if val is None:
        val = ser.find("c:yVal", NS)
    values = _data(val, cells) if val is not None else []
    categories = _data(cat, cells, dates) if cat is not None else [str(i + 1) for i in range(len(values))]
    return Series(name=name, categories=categories, values=values)


def _data(element: Any, cells: CellReader | None, dates: _Dates | None = None) -> list[str]:
    """The points of a c:tx / c:cat / c:val / c:xVal / c:yVal: its cache, else its literal, else its reference.
    With `dates` (categories), numbers in a date format (or on a date axis) read as ISO dates, as cells do."""
    multi = element.find("c:multiLvlStrRef/c:multiLvlStrCache", NS)
    if multi is not None and (labels := _multi_level(multi)):
        return labels
    for path in ("c:strRef/c:strCache", "c:numRef/c:numCache", "c:strLit", "c:numLit"):
        cache = element.find(path, NS)
        if cache is not None and cache.find("c:pt", NS) is not None:
            return _points(cache, dates if path.startswith(("c:numRef", "c:numLit")) else None)
    formula = element.find(".//c:f", NS)
    if formula is not None and formula.text and cells is not None:
        return _resolve(formula.text, cells)
    return []


def _points(cache: Any, dates: _Dates | None = None) -> list[str]:
    from openpyxl.styles.numbers import is_date_format

    count_el = cache.find("c:ptCount", NS)
    pts = cache.findall("c:pt", NS)[:MAX_POINTS]
    count = int(count_el.get("val", "0")) if count_el is not None else 0
    by_index = {int(pt.get("idx", "0")): (pt.findtext("c:v", "", NS) or "") for pt in pts}
    if dates is not None:
        default = cache.findtext("c:formatCode", "", NS) or "General"
        dated = [int(pt.get("idx", "0")) for pt in pts if dates.axis or is_date_format(pt.get("formatCode") or default)]
        by_index |= {i: _date_text(by_index[i], dates.epoch) for i in dated}
    count = min(max([count] + [i + 1 for i in by_index]), MAX_POINTS)
    return [by_index.get(i, "") for i in range(count)]


def _date_text(serial: str, epoch: datetime) -> str:
    """An Excel serial number as the date (time) it stands for, written as `cell_text` writes a date cell."""
    from openpyxl.utils.datetime import from_excel

    try:
        return cell_text(from_excel(float(serial), epoch))
    except (ValueError, OverflowError):
        return serial


def _multi_level(cache: Any) -> list[str]:
    """Hierarchical categories ('2024 Q1'): the file lists the innermost level first, each outer label once, at
    the first point of its group."""
    levels = [_points(lvl) for lvl in cache.findall("c:lvl", NS)][::-1]
    if not levels:
        return []
    return _join_levels([[level[i] if i < len(level) else "" for level in levels] for i in range(len(levels[-1]))])


def _join_levels(points: Sequence[Sequence[str]]) -> list[str]:
    """One label per point from its levels (outer first), joined by spaces: a blank outer level, and every level
    inside it, repeats the point before (a merged cell spans the points under it)."""
    labels, above = [], [""] * max((len(levels) for levels in points), default=0)
    for levels in points:
        merged = True
        for k, level in enumerate(levels):
            merged = merged and not level and k < len(levels) - 1
            above[k] = above[k] if merged else level
        labels.append(" ".join(x for x in above[: len(levels)] if x))
    return labels


def _resolve(formula: str, cells: CellReader) -> list[str]:
    match = _REFERENCE.match(formula.strip().strip("()"))
    if match is None:
        return []
    sheet = match["quoted"].replace("''", "'") if match["quoted"] else match["plain"]
    r0, c0 = int(match["r0"]), _column(match["c0"])
    r1, c1 = (int(match["r1"]), _column(match["c1"])) if match["r1"] else (r0, c0)
    r0, r1, c0, c1 = min(r0, r1), max(r0, r1), min(c0, c1), max(c0, c1)
    if (r1 - r0 + 1) * (c1 - c0 + 1) > MAX_POINTS:
        r1 = r0 + max(MAX_POINTS // (c1 - c0 + 1), 1) - 1
    texts = cells(sheet, r0, c0, r1, c1)
    rows, columns = r1 - r0 + 1, c1 - c0 + 1
    if rows == 1 or columns == 1:
        return texts
    texts += [""] * (rows * columns - len(texts))
    grid = [texts[r * columns : (r + 1) * columns] for r in range(rows)]
    return _join_levels(grid if rows >= columns else [list(column) for column in zip(*grid, strict=True)])


def _column(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - ord("A") + 1
    return number


def _title(title: Any, cells: CellReader | None) -> str:
    if title is None:
        return ""
    rich = title.find("c:tx/c:rich", NS)
    if rich is not None:
        paragraphs = ["".join(t.text or "" for t in p.iter(f"{{{A}}}t")) for p in rich.iter(f"{{{A}}}p")]
        return " ".join(" ".join(p.split()) for p in paragraphs if p.strip())
    tx = title.find("c:tx", NS)
    return " ".join(x for x in _data(tx, cells) if x) if tx is not None else ""


def cell_text(value: object) -> str:
    """A cell's value as the file writes it: 12.5 -> '12.5', 9 -> '9', 31.0 -> '31.0', a date -> '2024-03-01'."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return repr(value)  # what openpyxl read: "31" came as an int, "31.0" as this float
    if isinstance(value, datetime):
        return value.isoformat(sep=" ") if value.time() != time(0) else value.date().isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def open_workbook(source: str | IO[bytes]) -> Any:
    """A workbook opened read-only with its cached cell values (what Excel last computed, never a formula):
    what a sheet's tables and a chart's uncached references read."""
    from openpyxl import load_workbook

    return load_workbook(source, read_only=True, data_only=True)


def cell_reader(book: Any) -> CellReader:
    """A CellReader over an open workbook (`open_workbook`), at most MAX_POINTS cells per reference."""

    def read(sheet: str, r0: int, c0: int, r1: int, c1: int) -> list[str]:
        if sheet not in book.sheetnames:
            return []
        rows = book[sheet].iter_rows(min_row=r0, max_row=r1, min_col=c0, max_col=c1, values_only=True)
        return [cell_text(value) for row in rows for value in row][:MAX_POINTS]

    return read


class EmbeddedWorkbook:
    """A chart's embedded workbook (docx/pptx), opened on the first read of a reference without a cache (most
    charts carry caches and never need it), and only when it passes `check_zip` within the file's deadline. One
    that is refused or cannot be opened reads as no cells and costs the chart's uncached values, with one warning
    naming `where`; the deadline passing fails the file (TimeLimitError)."""

    def __init__(
        self, blob: bytes, max_unzipped_bytes: int, deadline: Deadline, warnings: list[str], where: str
    ) -> None:
        self.blob, self.max_unzipped_bytes, self.deadline = blob, max_unzipped_bytes, deadline
        self.warnings, self.where = warnings, where
        self._book: Any = None
        self._cells: CellReader | None = None
        self._failed = False

    def read(self, sheet: str, r0: int, c0: int, r1: int, c1: int) -> list[str]:
        """A `CellReader`."""
        if self._cells is None and not self._failed:
            try:
                check_zip(io.BytesIO(self.blob), self.max_unzipped_bytes, self.deadline)
                self._book = open_workbook(io.BytesIO(self.blob))
                self._cells = cell_reader(self._book)
            except TimeLimitError:
                raise
            except Exception as e:  # openpyxl raises many types on a broken workbook
                self._failed = True
                self.warnings.append(
                    f"{self.where}: embedded workbook not read ({reason(e)}): uncached values left out"
                )
        return self._cells(sheet, r0, c0, r1, c1) if self._cells is not None else []

    def close(self) -> None:
        if self._book is not None:
            self._book.close()
