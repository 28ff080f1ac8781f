"""Native Office charts read as their data: the embedded workbook of a docx/pptx chart opened only when a reference
has no cache (and only when it is a zip within the package limits), date categories as dates, multi-level
categories as one label per point, titles with dollar signs, and a caption beside an untitled chart."""

from __future__ import annotations

import io
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from mmrag.indexer import office_objects
from mmrag.indexer.extract import ExtractOptions, extract_file
from mmrag.indexer.items import FileResult, Item
from mmrag.indexer.office_charts import read_chart
from mmrag.indexer.office_objects import Place, part_chart_item
from mmrag.indexer.reading import Deadline, TimeLimitError
from tests.office_corpus import _add_docx_chart, _rewrite

OPTIONS = ExtractOptions(office_pages=False)
CATEGORIES = ["North", "South", "East", "West"]
SERIES: list[tuple[str, list[int | float]]] = [("Revenue", [11, 23.5, 37, 42])]
WORKBOOK = "word/embeddings/Microsoft_Excel_Sheet1.xlsx"


def _docx_chart(folder: Path, title: str, with_cache: bool, caption: str = "") -> Path:
    """A .docx with one native column chart (and its embedded workbook), the caption paragraph under it."""
    import docx

    document = docx.Document()
    document.add_paragraph("Sales went up in every region this year.")
    _add_docx_chart(document, "column", title, CATEGORIES, SERIES, with_cache=with_cache)
    if caption:
        document.add_paragraph(caption)
    path = folder / "report.docx"
    document.save(str(path))
    return path


def _with_bombed_workbook(path: Path, inflated: int) -> Path:
    """The .docx with its chart's embedded workbook padded by a member of `inflated` zero bytes (a few KB packed)."""
    with zipfile.ZipFile(path) as package:
        workbook = package.read(WORKBOOK)
    padded = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(workbook)) as old, zipfile.ZipFile(padded, "w", zipfile.ZIP_DEFLATED) as new:
        for info in old.infolist():
            new.writestr(info, old.read(info))
        new.writestr("xl/media/padding.bin", bytes(inflated))
    bombed = path.with_name("bombed.docx")
    _rewrite(path, bombed, replace={WORKBOOK: padded.getvalue()})
    return bombed


def _charts(result: FileResult) -> list[Item]:
    assert result.error is None, result.error
    return [item for item in result.items if item.origin == "chart-data"]


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every workbook openpyxl opens during the test."""
    calls: list[object] = []
    load = openpyxl.load_workbook

    def spy(source: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(source)
        return load(source, *args, **kwargs)

    monkeypatch.setattr(openpyxl, "load_workbook", spy)
    return calls


def test_a_chart_with_caches_never_opens_its_embedded_workbook(tmp_path, opened):
    path = _with_bombed_workbook(_docx_chart(tmp_path, "Regional revenue", with_cache=True), 8 * 2**20)
    result = extract_file(path, "sha", replace(OPTIONS, max_unzipped_bytes=2 * 2**20))
    (chart,) = _charts(result)
    assert "| North | 11 |" in chart.text and "| South | 23.5 |" in chart.text
    assert chart.image is not None
    assert opened == []
    assert result.warnings == []


def test_an_embedded_workbook_bomb_costs_only_the_uncached_values(tmp_path, opened):
    path = _with_bombed_workbook(_docx_chart(tmp_path, "Regional revenue", with_cache=False), 8 * 2**20)
    result = extract_file(path, "sha", replace(OPTIONS, max_unzipped_bytes=2 * 2**20))
    (chart,) = _charts(result)
    assert "Column chart: Regional revenue" in chart.text
    assert "| North |" in chart.text and "23.5" not in chart.text
    assert opened == []
    assert len(result.warnings) == 1 and "embedded workbook" in result.warnings[0]
    assert "possible zip bomb" in result.warnings[0] and "\n" not in result.warnings[0]


def test_a_chart_without_caches_reads_its_embedded_workbook(tmp_path):
    result = extract_file(_docx_chart(tmp_path, "Regional revenue", with_cache=False), "sha", OPTIONS)
    (chart,) = _charts(result)
    assert "| North | 11 |" in chart.text and "| West | 42 |" in chart.text
    assert result.warnings == []


def _chart_space(categories: str, date1904: bool = False, axis: str = "c:catAx") -> bytes:
    """A column chart of one series over the given c:cat content, on a category (or date) axis."""
    epoch = '<c:date1904 val="1"/>' if date1904 else ""
    values = "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in enumerate((10, 20, 30)))
    return (
        '<c:chartSpace xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart">'
        f"{epoch}<c:chart><c:plotArea><c:barChart>"
        '<c:barDir val="col"/><c:ser><c:idx val="0"/><c:order val="0"/>'
        f"<c:cat>{categories}</c:cat>"
        "<c:val><c:numRef><c:f>Sheet1!$B$2:$B$4</c:f><c:numCache><c:formatCode>General</c:formatCode>"
        f'<c:ptCount val="3"/>{values}</c:numCache></c:numRef></c:val></c:ser>'
        '<c:axId val="1"/><c:axId val="2"/></c:barChart>'
        f'<{axis}><c:axId val="1"/></{axis}><c:valAx><c:axId val="2"/></c:valAx>'
        "</c:plotArea></c:chart></c:chartSpace>"
    ).encode()


def _num_cache(serials: tuple[str, ...], format_code: str) -> str:
    points = "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in enumerate(serials))
    return (
        f"<c:numRef><c:f>Sheet1!$A$2:$A$4</c:f><c:numCache><c:formatCode>{format_code}</c:formatCode>"
        f'<c:ptCount val="{len(serials)}"/>{points}</c:numCache></c:numRef>'
    )


@pytest.mark.parametrize("format_code", ["m/d/yyyy", "mmm-yy", "yyyy-mm-dd"])
def test_date_categories_in_a_cache_read_as_dates(format_code):
    chart = read_chart(_chart_space(_num_cache(("45352", "45383", "45413"), format_code)), "chart1.xml", None)
    assert chart.series[0].categories == ["2024-03-01", "2024-04-01", "2024-05-01"]
    assert "| 2024-03-01 | 10 |" in chart.text()


def test_date_categories_follow_the_1904_calendar_and_the_date_axis():
    cached = _chart_space(_num_cache(("43890", "43891", "43892.5"), "General"), date1904=True, axis="c:dateAx")
    assert read_chart(cached, "chart1.xml", None).series[0].categories == [
        "2024-03-01",
        "2024-03-02",
        "2024-03-03 12:00:00",
    ]
    plain = _chart_space(_num_cache(("43890", "43891", "43892"), "General"))
    assert read_chart(plain, "chart1.xml", None).series[0].categories == ["43890", "43891", "43892"]


def test_multi_level_categories_in_a_cache_join_per_point():
    def level(labels: dict[int, str], n: int) -> str:
        points = "".join(f'<c:pt idx="{i}"><c:v>{v}</c:v></c:pt>' for i, v in labels.items())
        return f'<c:lvl><c:ptCount val="{n}"/>{points}</c:lvl>'

    cache = level({0: "Q1", 1: "Q2", 2: "Q1"}, 3) + level({0: "2024", 2: "2025"}, 3)
    xml = _chart_space(
        f"<c:multiLvlStrRef><c:f>Sheet1!$A$2:$B$4</c:f><c:multiLvlStrCache>{cache}"
        "</c:multiLvlStrCache></c:multiLvlStrRef>"
    )
    assert read_chart(xml, "chart1.xml", None).series[0].categories == ["2024 Q1", "2024 Q2", "2025 Q1"]


def test_two_column_categories_without_a_cache_give_one_label_per_point(tmp_path):
    from openpyxl.chart import BarChart, Reference

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sales"
    sheet.append(["Year", "Quarter", "Revenue"])
    for row in (["2024", "Q1", 10], [None, "Q2", 20], ["2025", "Q1", 30], [None, "Q2", 40]):
        sheet.append(row)
    chart = BarChart()
    chart.title = "Revenue by quarter"
    chart.add_data(Reference(sheet, min_col=3, min_row=1, max_row=5), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, max_col=2, min_row=2, max_row=5))
    sheet.add_chart(chart, "E2")
    path = tmp_path / "quarters.xlsx"
    book.save(str(path))
    (item,) = _charts(extract_file(path, "sha", OPTIONS))
    rows = [line for line in item.text.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert rows[1:] == ["| 2024 Q1 | 10 |", "| 2024 Q2 | 20 |", "| 2025 Q1 | 30 |", "| 2025 Q2 | 40 |"]


def _xlsx_chart(folder: Path, title: str) -> Path:
    from openpyxl.chart import BarChart, Reference

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Band", "Customers"])
    for row in (["$1k_$5k", 12], ["a$#$b", 7]):
        sheet.append(row)
    chart = BarChart()
    chart.title = title
    chart.add_data(Reference(sheet, min_col=2, min_row=1, max_row=3), titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=3))
    sheet.add_chart(chart, "D2")
    path = folder / "bands.xlsx"
    book.save(str(path))
    return path


def test_dollar_signs_in_a_chart_are_drawn_as_text(tmp_path):
    result = extract_file(_xlsx_chart(tmp_path, "Revenue $1k_$5k"), "sha", OPTIONS)
    (chart,) = _charts(result)
    assert chart.kind == "image" and chart.image is not None
    assert "chart: Revenue $1k_$5k" in chart.text and "| a$#$b | 7 |" in chart.text
    assert result.warnings == []


def test_a_chart_that_cannot_be_drawn_keeps_its_data(tmp_path, monkeypatch):
    def fail(chart: object) -> None:
        raise ValueError("cannot draw")

    monkeypatch.setattr(office_objects, "draw_chart", fail)
    result = extract_file(_xlsx_chart(tmp_path, "Customers by band"), "sha", OPTIONS)
    (chart,) = _charts(result)
    assert chart.kind == "text" and chart.image is None
    assert "Column chart: Customers by band" in chart.text and "| $1k_$5k | 12 |" in chart.text
    assert chart.shape is not None and chart.shape.startswith('Sheet "Sheet":')
    assert any("chart picture not drawn" in w and "cannot draw" in w for w in result.warnings)


def test_the_caption_of_an_untitled_docx_chart_is_searchable(tmp_path):
    path = _docx_chart(tmp_path, "", with_cache=True, caption="Figure 2: Revenue by region")
    (chart,) = _charts(extract_file(path, "sha", OPTIONS))
    assert chart.text.startswith("Figure 2: Revenue by region\nColumn chart\n")
    assert chart.label == "Figure 2"


def test_a_titled_docx_chart_keeps_its_caption_once(tmp_path):
    path = _docx_chart(tmp_path, "Revenue by region", with_cache=True, caption="Figure 2: Revenue by region")
    (chart,) = _charts(extract_file(path, "sha", OPTIONS))
    assert chart.text.startswith("Column chart: Revenue by region\n")
    assert chart.caption == "Figure 2: Revenue by region"


def _chart_part(path: Path) -> Any:
    """The (only) chart part of a .docx, as python-docx loads it."""
    import docx

    parts = docx.Document(str(path)).part.related_parts.values()
    return next(part for part in parts if str(part.partname).startswith("/word/charts/"))


def test_a_spent_file_deadline_stops_the_embedded_workbook_check(tmp_path):
    """The check of a chart's embedded workbook runs within the file's deadline (MMRAG_FILE_TIMEOUT_S): once it is
    spent, a chart whose references have no cache fails the file (TimeLimitError, as a spent deadline does
    everywhere) instead of checking a workbook of any size; a chart with caches never opens its workbook."""
    spent = Deadline(-1.0)
    place = Place("chart:0", "Chart 1")
    warnings: list[str] = []
    cached = _chart_part(_docx_chart(tmp_path, "Regional revenue", with_cache=True))
    item = part_chart_item(lambda: cached, place, warnings, OPTIONS.max_unzipped_bytes, spent)
    assert item is not None and "| South | 23.5 |" in item.text
    uncached = _chart_part(_docx_chart(tmp_path, "Regional revenue", with_cache=False))
    with pytest.raises(TimeLimitError, match="MMRAG_FILE_TIMEOUT_S"):
        part_chart_item(lambda: uncached, place, warnings, OPTIONS.max_unzipped_bytes, spent)
    assert warnings == []
