"""A corpus of Word, PowerPoint and Excel files whose text, tables, pictures and native charts are known: the truth
is recorded while the files are written (folder/truth.json), then checked against what extraction reads.

    corpus = make_office_corpus(folder, seed=HELD_OUT_SEEDS[0])   # report-<seed>.docx, slides-<seed>.pptx,
                                                                   # book-<seed>.xlsx and truth.json
    corpus = load_office_corpus(folder)                            # the same OfficeCorpus, read back
    cases = bad_office_files(folder)                               # hostile files, each with its expected reason

Each seed gives other titles, wording, tables, data, chart types and positions:

- the .docx: a title, paragraphs, a table under a 'Table 1: ...' caption, a picture with alt text and a
  'Figure 1: ...' caption, a native chart (python-pptx's ChartXmlWriter part and its embedded workbook, attached
  as an inline c:chart graphic; on odd seeds without its value cache, so the embedded workbook must be read) under
  a 'Figure 2: ...' caption.
- the .pptx: a title slide, a slide of text boxes placed out of reading order (one inside a group), a table slide,
  a picture slide (alt text), then one slide per chart (python-pptx writes each chart with its caches), speaker
  notes on several slides.
- the .xlsx: a data sheet with charts made by openpyxl (references only, no caches: the workbook's cells hold the
  data), and a long sheet (split into tables of 50 rows) with a picture.

truth.json: {"seed", "docx", "pptx", "xlsx" (file names), "charts": [ChartTruth], "tables": [TableTruth],
"slides": [SlideTruth], "pictures": [PictureTruth]} - see the dataclasses below. Values are strings exactly as
written to the file ("12.5", "9").
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

DEV_SEEDS = (1, 2)
HELD_OUT_SEEDS = (1001, 1002)

BOMB_LIMIT = 2 * 2**20
"""Pass as ExtractOptions.max_unzipped_bytes with `bad_office_files`: the bomb inflates past it, the rest do not."""

_WORD_TEXT = (
    "revenue margin region north south east west quarter forecast budget growth churn customers orders "
    "shipping inventory supplier contract pipeline launch campaign survey latency uptime incidents "
    "tickets backlog release hiring payroll training audit compliance energy emissions fleet warehouse "
    "pricing discount renewal upsell"
)
_WORDS = _WORD_TEXT.split()
_CATEGORY_SETS = (
    ["Q1 2024", "Q2 2024", "Q3 2024", "Q4 2024"],
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun"],
    ["Alpha", "Beta", "Gamma", "Delta", "Epsilon"],
    ["Berlin", "Lagos", "Lima", "Osaka", "Perth", "Quebec", "Tunis"],
)
_SERIES_NAMES = ("North", "South", "East", "West", "Online", "Retail", "Partners")
PPTX_TYPES = ("bar", "column", "line", "pie", "doughnut", "area", "scatter", "radar")
XLSX_TYPES = ("bar", "column", "line", "pie", "area", "scatter")


@dataclass
class SeriesTruth:
    name: str
    values: list[str]
    categories: list[str]
    """The series' own categories (x values for a scatter chart)."""


@dataclass
class ChartTruth:
    file: str
    type: str
    """bar (horizontal), column, line, pie, doughnut, area, scatter, radar."""
    title: str
    category_title: str
    series: list[SeriesTruth]
    slide: int | None = None
    sheet: str | None = None
    caption: str | None = None
    """The docx caption paragraph ('Figure 2: ...')."""


@dataclass
class TableTruth:
    file: str
    cells: list[list[str]]
    """Row by row, the header first."""
    slide: int | None = None
    sheet: str | None = None
    caption: str | None = None


@dataclass
class SlideTruth:
    file: str
    slide: int
    order: list[str]
    """The slide's texts in reading order: its title first."""
    notes: str = ""


@dataclass
class PictureTruth:
    file: str
    alt: str
    caption: str | None = None
    slide: int | None = None
    sheet: str | None = None


@dataclass
class OfficeCorpus:
    folder: Path
    seed: int
    docx: str
    pptx: str
    xlsx: str
    charts: list[ChartTruth] = field(default_factory=list)
    tables: list[TableTruth] = field(default_factory=list)
    slides: list[SlideTruth] = field(default_factory=list)
    pictures: list[PictureTruth] = field(default_factory=list)

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "folder"}
        (self.folder / "truth.json").write_text(json.dumps(data, indent=1), encoding="utf-8")


def load_office_corpus(folder: Path) -> OfficeCorpus:
    data = json.loads((folder / "truth.json").read_text(encoding="utf-8"))
    return OfficeCorpus(
        folder=folder,
        seed=data["seed"],
        docx=data["docx"],
        pptx=data["pptx"],
        xlsx=data["xlsx"],
        charts=[ChartTruth(**{**c, "series": [SeriesTruth(**s) for s in c["series"]]}) for c in data["charts"]],
        tables=[TableTruth(**t) for t in data["tables"]],
        slides=[SlideTruth(**s) for s in data["slides"]],
        pictures=[PictureTruth(**p) for p in data["pictures"]],
    )


def make_office_corpus(folder: Path, seed: int) -> OfficeCorpus:
    """Write the three files of `seed` into `folder` with their truth.json."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    corpus = OfficeCorpus(folder, seed, f"report-{seed}.docx", f"slides-{seed}.pptx", f"book-{seed}.xlsx")
    _write_docx(corpus, rng)
    _write_pptx(corpus, rng)
    _write_xlsx(corpus, rng)
    corpus.save()
    return corpus


# ----------------------------------------------------------------------------------------------------------- data


def _phrase(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize()


def _paragraph(rng: random.Random) -> str:
    return " ".join(_phrase(rng, rng.randint(6, 14)) + "." for _ in range(rng.randint(2, 4)))


def _value(rng: random.Random, ints: bool) -> int | float:
    if ints:
        return rng.randint(1, 900)
    value = rng.randint(10, 9999) / 10
    return round(value + 0.1, 1) if value.is_integer() else value


def _x(rng: random.Random) -> float:
    """An x value with one decimal, never whole (openpyxl writes 31.0 as "31")."""
    return (10 * rng.randint(1, 49) + rng.randint(1, 9)) / 10


def _data(rng: random.Random, kind: str) -> tuple[list[str], list[tuple[str, list[int | float]]]]:
    categories = list(rng.choice(_CATEGORY_SETS))
    count = 1 if kind in ("pie", "doughnut") else rng.randint(1, 3)
    ints = rng.random() < 0.5
    names = rng.sample(_SERIES_NAMES, count)
    return categories, [(name, [_value(rng, ints) for _ in categories]) for name in names]


def _xy(rng: random.Random) -> list[tuple[str, list[float], list[int | float]]]:
    series = []
    for name in rng.sample(_SERIES_NAMES, rng.randint(1, 2)):
        xs = sorted({_x(rng) for _ in range(rng.randint(4, 7))})
        series.append((name, xs, [_value(rng, False) for _ in xs]))
    return series


def _picture(rng: random.Random) -> bytes:
    image = Image.new("RGB", (320, 200), tuple(rng.randint(180, 255) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randint(0, 280), rng.randint(0, 160)
        draw.ellipse(
            (x, y, x + rng.randint(10, 60), y + rng.randint(10, 60)), fill=tuple(rng.randint(0, 160) for _ in range(3))
        )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _table_cells(rng: random.Random) -> list[list[str]]:
    columns = rng.randint(2, 4)
    header = [_phrase(rng, 1) + f" {i + 1}" for i in range(columns)]
    rows = [
        [_phrase(rng, 1)] + [str(_value(rng, rng.random() < 0.5)) for _ in range(columns - 1)]
        for _ in range(rng.randint(2, 5))
    ]
    return [header, *rows]


# ----------------------------------------------------------------------------------------------------------- docx


def _pptx_chart_data(categories: list[str], series: list[tuple[str, list[int | float]]]) -> Any:
    from pptx.chart.data import CategoryChartData

    data = CategoryChartData()
    data.categories = categories
    for name, values in series:
        data.add_series(name, values)
    return data


def _write_docx(corpus: OfficeCorpus, rng: random.Random) -> None:
    import docx
    from docx.shared import Inches

    document = docx.Document()
    document.add_heading(_phrase(rng, 4), 0)
    for _ in range(rng.randint(1, 3)):
        document.add_paragraph(_paragraph(rng))
    cells = _table_cells(rng)
    caption = f"Table 1: {_phrase(rng, 5)}"
    document.add_paragraph(caption)
    table = document.add_table(rows=len(cells), cols=len(cells[0]))
    for row, values in zip(table.rows, cells, strict=True):
        for cell, value in zip(row.cells, values, strict=True):
            cell.text = value
    corpus.tables.append(TableTruth(corpus.docx, cells, caption=caption))
    document.add_paragraph(_paragraph(rng))
    alt = f"Photo of {_phrase(rng, 3).lower()}"
    shape = document.add_picture(io.BytesIO(_picture(rng)), width=Inches(3))
    shape._inline.docPr.set("descr", alt)
    caption = f"Figure 1: {_phrase(rng, 5)}"
    document.add_paragraph(caption)
    corpus.pictures.append(PictureTruth(corpus.docx, alt, caption))
    document.add_paragraph(_paragraph(rng))
    kind = rng.choice(("column", "line", "bar"))
    categories, series = _data(rng, kind)
    title = _phrase(rng, 4)
    caption = f"Figure 2: {_phrase(rng, 5)}"
    _add_docx_chart(document, kind, title, categories, series, with_cache=corpus.seed % 2 == 0)
    document.add_paragraph(caption)
    corpus.charts.append(
        ChartTruth(
            corpus.docx,
            kind,
            title,
            "",
            [SeriesTruth(name, [str(v) for v in values], categories) for name, values in series],
            caption=caption,
        )
    )
    for _ in range(rng.randint(1, 3)):
        document.add_paragraph(_paragraph(rng))
    document.save(str(corpus.folder / corpus.docx))


_CHART_TYPES = {
    "bar": "BAR_CLUSTERED",
    "column": "COLUMN_CLUSTERED",
    "line": "LINE_MARKERS",
    "pie": "PIE",
    "doughnut": "DOUGHNUT",
    "area": "AREA",
    "scatter": "XY_SCATTER",
    "radar": "RADAR",
}


def _add_docx_chart(
    document: Any,
    kind: str,
    title: str,
    categories: list[str],
    series: list[tuple[str, list[int | float]]],
    with_cache: bool,
) -> None:
    """A native chart in a .docx: python-pptx's chart XML and embedded workbook as parts of the Word package,
    shown by an inline c:chart graphic in its own paragraph."""
    import re

    from docx.opc.constants import RELATIONSHIP_TYPE as RT
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import parse_xml
    from pptx.chart.xmlwriter import ChartXmlWriter
    from pptx.enum.chart import XL_CHART_TYPE

    data = _pptx_chart_data(categories, series)
    xml = ChartXmlWriter(getattr(XL_CHART_TYPE, _CHART_TYPES[kind]), data).xml
    xml = xml.replace("<c:chart>", f'<c:chart>{_title_xml(title)}<c:autoTitleDeleted val="0"/>', 1)
    if not with_cache:
        xml = re.sub(r"<c:numCache>.*?</c:numCache>", "", xml, flags=re.S)
    xml = xml.replace(
        "</c:chartSpace>", '<c:externalData r:id="rId1"><c:autoUpdate val="0"/></c:externalData></c:chartSpace>'
    )
    part = document.part
    number = sum(1 for p in part.package.iter_parts() if str(p.partname).startswith("/word/charts/")) + 1
    chart = Part(
        PackURI(f"/word/charts/chart{number}.xml"),
        "application/vnd.openxmlformats-officedocument.drawingml.chart+xml",
        xml.encode(),
        part.package,
    )
    workbook = Part(
        PackURI(f"/word/embeddings/Microsoft_Excel_Sheet{number}.xlsx"),
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        data.xlsx_blob,
        part.package,
    )
    assert chart.relate_to(workbook, RT.PACKAGE) == "rId1"
    rid = part.relate_to(chart, RT.CHART)
    drawing = parse_xml(
        '<w:drawing xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" '
        'xmlns:wp="http://schemas.openxmlformats.org/drawingml/2006/wordprocessingDrawing" '
        'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
        'xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<wp:inline distT="0" distB="0" distL="0" distR="0"><wp:extent cx="5486400" cy="3200400"/>'
        '<wp:effectExtent l="0" t="0" r="0" b="0"/>'
        f'<wp:docPr id="{100 + number}" name="Chart {number}"/><wp:cNvGraphicFramePr/>'
        '<a:graphic><a:graphicData uri="http://schemas.openxmlformats.org/drawingml/2006/chart">'
        f'<c:chart r:id="{rid}"/></a:graphicData></a:graphic></wp:inline></w:drawing>'
    )
    document.add_paragraph().add_run()._r.append(drawing)


def _title_xml(title: str) -> str:
    from xml.sax.saxutils import escape

    return (
        "<c:title><c:tx><c:rich><a:bodyPr/><a:p><a:r><a:t>"
        f'{escape(title)}</a:t></a:r></a:p></c:rich></c:tx><c:overlay val="0"/></c:title>'
    )


# ----------------------------------------------------------------------------------------------------------- pptx


def _write_pptx(corpus: OfficeCorpus, rng: random.Random) -> None:
    from pptx import Presentation
    from pptx.util import Emu, Inches

    presentation = Presentation()
    layouts = presentation.slide_layouts
    title = _phrase(rng, 4)
    slide = presentation.slides.add_slide(layouts[0])
    slide.shapes.title.text = title
    subtitle = _phrase(rng, 6)
    slide.placeholders[1].text = subtitle
    corpus.slides.append(SlideTruth(corpus.pptx, 1, [title, subtitle]))

    # text boxes added in random order at distinct heights, one of them inside a group
    slide = presentation.slides.add_slide(layouts[5])
    title = _phrase(rng, 3)
    slide.shapes.title.text = title
    texts = [_phrase(rng, rng.randint(4, 9)) for _ in range(rng.randint(3, 5))]
    tops = [Inches(2 + 1.1 * i) for i in range(len(texts))]
    grouped = rng.randrange(len(texts))
    for i in rng.sample(range(len(texts)), len(texts)):
        shapes = slide.shapes.add_group_shape().shapes if i == grouped else slide.shapes
        box = shapes.add_textbox(Emu(Inches(0.5) + rng.randint(0, Inches(4))), tops[i], Inches(4), Inches(0.8))
        box.text_frame.text = texts[i]
    notes = _paragraph(rng)
    slide.notes_slide.notes_text_frame.text = notes
    corpus.slides.append(SlideTruth(corpus.pptx, 2, [title, *texts], notes))

    slide = presentation.slides.add_slide(layouts[5])
    title = _phrase(rng, 3)
    slide.shapes.title.text = title
    cells = _table_cells(rng)
    frame = slide.shapes.add_table(len(cells), len(cells[0]), Inches(0.5), Inches(2), Inches(9), Inches(3))
    for r, values in enumerate(cells):
        for c, value in enumerate(values):
            frame.table.cell(r, c).text = value
    corpus.tables.append(TableTruth(corpus.pptx, cells, slide=3, caption=title))
    notes = _paragraph(rng)
    slide.notes_slide.notes_text_frame.text = notes
    corpus.slides.append(SlideTruth(corpus.pptx, 3, [title], notes))

    slide = presentation.slides.add_slide(layouts[5])
    title = _phrase(rng, 3)
    slide.shapes.title.text = title
    picture = slide.shapes.add_picture(io.BytesIO(_picture(rng)), Inches(1), Inches(2), Inches(5))
    alt = f"Picture of {_phrase(rng, 3).lower()}"
    picture._element.nvPicPr.cNvPr.set("descr", alt)
    corpus.pictures.append(PictureTruth(corpus.pptx, alt, slide=4))
    corpus.slides.append(SlideTruth(corpus.pptx, 4, [title]))

    for kind in rng.sample(PPTX_TYPES, 4):
        _add_pptx_chart(corpus, presentation, kind, rng)
    presentation.save(str(corpus.folder / corpus.pptx))


def _add_pptx_chart(corpus: OfficeCorpus, presentation: Any, kind: str, rng: random.Random) -> None:
    from pptx.chart.data import XyChartData
    from pptx.enum.chart import XL_CHART_TYPE
    from pptx.util import Inches

    slide = presentation.slides.add_slide(presentation.slide_layouts[5])
    number = len(presentation.slides._sldIdLst)
    heading = _phrase(rng, 3)
    slide.shapes.title.text = heading
    if kind == "scatter":
        xy = _xy(rng)
        data: Any = XyChartData()
        for name, xs, ys in xy:
            series = data.add_series(name)
            for x, y in zip(xs, ys, strict=True):
                series.add_data_point(x, y)
        truth = [SeriesTruth(name, [str(y) for y in ys], [str(x) for x in xs]) for name, xs, ys in xy]
    else:
        categories, values = _data(rng, kind)
        data = _pptx_chart_data(categories, values)
        truth = [SeriesTruth(name, [str(v) for v in vs], categories) for name, vs in values]
    frame = slide.shapes.add_chart(
        getattr(XL_CHART_TYPE, _CHART_TYPES[kind]), Inches(1), Inches(1.8), Inches(8), Inches(5), data
    )
    title = _phrase(rng, 4)
    frame.chart.has_title = True
    frame.chart.chart_title.text_frame.text = title
    notes = _paragraph(rng)
    slide.notes_slide.notes_text_frame.text = notes
    corpus.charts.append(ChartTruth(corpus.pptx, kind, title, "", truth, slide=number))
    corpus.slides.append(SlideTruth(corpus.pptx, number, [heading], notes))


# ----------------------------------------------------------------------------------------------------------- xlsx


def _write_xlsx(corpus: OfficeCorpus, rng: random.Random) -> None:
    from openpyxl import Workbook
    from openpyxl.drawing.image import Image as SheetImage

    book = Workbook()
    sheet = book.active
    sheet.title = rng.choice(("Sales 2024", "Data", "Q'Results", "Ops"))
    categories = list(rng.choice(_CATEGORY_SETS))
    names = rng.sample(_SERIES_NAMES, 3)
    ints = rng.random() < 0.5
    columns = {name: [_value(rng, ints) for _ in categories] for name in names}
    header = [rng.choice(("Quarter", "Month", "Item", "City")), *names]
    xs = sorted({_x(rng) for _ in range(len(categories))})  # column E: a scatter's x
    sheet.append([*header, "X"])
    rows = [[*header, "X"]]
    for i, category in enumerate(categories):
        x = xs[i] if i < len(xs) else None
        sheet.append([category, *(columns[name][i] for name in names), x])
        rows.append([category, *(str(columns[name][i]) for name in names), "" if x is None else str(x)])
    corpus.tables.append(TableTruth(corpus.xlsx, rows, sheet=sheet.title))
    for n, kind in enumerate(rng.sample(XLSX_TYPES, 3)):
        _add_xlsx_chart(corpus, sheet, kind, n, header, categories, columns, xs, rng)

    long = book.create_sheet("Log")
    log_header = ["Day", "Orders", "Note"]
    long.append(log_header)
    rows = [[f"D{i + 1}", str(rng.randint(1, 999)), _phrase(rng, 2)] for i in range(rng.randint(60, 130))]
    for row in rows:
        long.append([row[0], int(row[1]), row[2]])
    corpus.tables.append(TableTruth(corpus.xlsx, [log_header, *rows], sheet="Log"))
    long.add_image(SheetImage(io.BytesIO(_picture(rng))), "E2")
    corpus.pictures.append(PictureTruth(corpus.xlsx, "", sheet="Log"))
    book.save(str(corpus.folder / corpus.xlsx))


def _add_xlsx_chart(
    corpus: OfficeCorpus,
    sheet: Any,
    kind: str,
    n: int,
    header: list[str],
    categories: list[str],
    columns: dict[str, list[int | float]],
    xs: list[float],
    rng: random.Random,
) -> None:
    from openpyxl.chart import AreaChart, BarChart, LineChart, PieChart, Reference, ScatterChart, Series

    last = len(categories) + 1
    names = list(columns)
    used = names[:1] if kind == "pie" else names[: rng.randint(1, 3)]
    title = _phrase(rng, 4)
    axis = header[0]
    if kind == "scatter":
        chart = ScatterChart()
        x_ref = Reference(sheet, min_col=5, min_row=2, max_row=len(xs) + 1)
        for name in used:
            col = names.index(name) + 2
            chart.series.append(
                Series(Reference(sheet, min_col=col, min_row=1, max_row=len(xs) + 1), x_ref, title_from_data=True)
            )
        truth = [SeriesTruth(name, [str(v) for v in columns[name][: len(xs)]], [str(x) for x in xs]) for name in used]
    else:
        chart = {"bar": BarChart, "column": BarChart, "line": LineChart, "pie": PieChart, "area": AreaChart}[kind]()
        if kind in ("bar", "column"):
            chart.type = "bar" if kind == "bar" else "col"
        data = Reference(sheet, min_col=2, max_col=1 + len(used), min_row=1, max_row=last)
        chart.add_data(data, titles_from_data=True)
        chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=last))
        truth = [SeriesTruth(name, [str(v) for v in columns[name]], categories) for name in used]
    chart.title = title
    if kind != "pie":
        chart.x_axis.title = axis
    sheet.add_chart(chart, f"H{2 + 18 * n}")
    corpus.charts.append(ChartTruth(corpus.xlsx, kind, title, axis if kind != "pie" else "", truth, sheet=sheet.title))


# ------------------------------------------------------------------------------------------------------ bad files


@dataclass(frozen=True)
class BadOfficeFile:
    path: Path
    reason: tuple[str, ...]
    """Fragments (lower case), one of which the failure reason holds; empty: the file is indexed."""
    warning: str = ""
    """A fragment that a warning holds (when the file is indexed)."""


def bad_office_files(folder: Path) -> list[BadOfficeFile]:
    """Hostile and broken Office files, each with the reason a user should read (pass BOMB_LIMIT as the
    extraction's max_unzipped_bytes)."""
    import docx

    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "_good.docx"
    document = docx.Document()
    document.add_paragraph("A perfectly ordinary paragraph about quarterly revenue.")
    document.save(str(good))
    cases = []

    bomb = folder / "bomb.docx"
    _rewrite(good, bomb, extra={"word/media/filler.bin": b"\0" * (BOMB_LIMIT * 4)})
    cases.append(BadOfficeFile(bomb, ("zip bomb",)))

    broken = folder / "broken-xml.docx"
    _rewrite(good, broken, replace={"word/document.xml": b'<?xml version="1.0"?><w:document xmlns:w="x"><w:body><w:p>'})
    cases.append(BadOfficeFile(broken, ("broken xml in word/document.xml",)))

    entities = folder / "entities.docx"
    billion = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b'<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r>'
        b"<w:t>&lol2;</w:t></w:r></w:p></w:body></w:document>"
    )
    _rewrite(good, entities, replace={"word/document.xml": billion})
    cases.append(BadOfficeFile(entities, ("dtd",)))

    encrypted = folder / "encrypted.docx"
    encrypted.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504 + "EncryptionInfo".encode("utf-16-le") + b"\0" * 1024
    )
    cases.append(BadOfficeFile(encrypted, ("encrypted", "password")))

    legacy = folder / "legacy.xlsx"
    legacy.write_bytes(
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504 + "Workbook".encode("utf-16-le") + b"\0" * 1024
    )
    cases.append(BadOfficeFile(legacy, ("legacy binary office",)))

    macros = folder / "macros.docx"
    _rewrite(good, macros, extra={"word/vbaProject.bin": b"\xd0\xcf\x11\xe0 fake VBA project"})
    cases.append(BadOfficeFile(macros, (), warning="macros (never run)"))

    docm = folder / "docm.docx"
    main = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
    with zipfile.ZipFile(good) as archive:
        types = archive.read("[Content_Types].xml").replace(
            main, b"application/vnd.ms-word.document.macroEnabled.main+xml"
        )
    _rewrite(good, docm, replace={"[Content_Types].xml": types}, extra={"word/vbaProject.bin": b"fake"})
    cases.append(BadOfficeFile(docm, ("macro-enabled",)))

    truncated = folder / "truncated.pptx"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    cases.append(BadOfficeFile(truncated, ("not a zip", "truncated", "corrupt")))

    png = folder / "picture.docx"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG")
    png.write_bytes(buffer.getvalue())
    cases.append(BadOfficeFile(png, ("not an office file",)))

    missing = folder / "missing-part.docx"
    _rewrite(good, missing, drop={"word/document.xml"})
    cases.append(BadOfficeFile(missing, ("corrupt word document", "missing")))
    good.unlink()
    return cases


def _rewrite(
    source: Path,
    target: Path,
    replace: dict[str, bytes] | None = None,
    extra: dict[str, bytes] | None = None,
    drop: set[str] | None = None,
) -> None:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for item in old.infolist():
            if item.filename in (drop or set()):
                continue
            new.writestr(item, (replace or {}).get(item.filename, old.read(item)))
        for name, data in (extra or {}).items():
            new.writestr(name, data)
