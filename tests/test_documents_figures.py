"""Figures and tables of HTML/Markdown documents, SVG drawings (drawn safely), and ruled tables on PDF pages."""

from __future__ import annotations

import base64
import http.server
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from PIL import Image

from mmrag.indexer.extract import ExtractOptions, extract_file
from mmrag.indexer.items import FileResult, Item
from mmrag.indexer.pipeline import discover
from mmrag.indexer.tables import find_pdf_tables, markdown_table

BLUE = (0, 0, 255)
RED = (255, 0, 0)


def extract(path: Path, **options: object) -> FileResult:
    return extract_file(path, "sha", ExtractOptions(roots=(path.parent.resolve(),), **options))  # type: ignore[arg-type]


def only(result: FileResult, kind: str) -> list[Item]:
    assert result.error is None, result.error
    return [item for item in result.items if item.kind == kind]


def colour_share(image: Image.Image, colour: tuple[int, int, int]) -> float:
    """How much of the image is (nearly) `colour`."""
    import numpy as np

    pixels = np.asarray(image.convert("RGB").resize((64, 64), Image.Resampling.NEAREST), dtype=int)
    return float((np.abs(pixels - np.array(colour)).sum(axis=2) < 60).mean())


def png(path: Path, colour: tuple[int, int, int] = BLUE) -> Path:
    Image.new("RGB", (120, 80), colour).save(path)
    return path


CHART_SVG = """<svg viewBox="0 0 100 50" width="200" height="100">
  <title>Revenue chart</title>
  <linearGradient id="g"><stop offset="0" stop-color="blue"/></linearGradient>
  <rect x="0" y="0" width="50" height="50" fill="#0000ff"/>
  <text x="60" y="20">Q1 Q2 Q3</text>
</svg>"""


# HTML and Markdown figures


def test_figure_with_figcaption_and_inline_svg_chart(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><body><p>Quarterly review. As shown in Figure 2, revenue doubled in the second half.</p>"
        f"<figure>{CHART_SVG}<figcaption>Figure 2: Revenue by quarter, 2024.</figcaption></figure>"
        "<p>Closing remarks on the outlook.</p></body></html>"
    )
    result = extract(page)
    (figure,) = only(result, "image")
    assert figure.locator == "figure:0"
    assert figure.label == "Figure 2"
    assert figure.caption == "Figure 2: Revenue by quarter, 2024."
    assert figure.text.startswith("Figure 2: Revenue by quarter, 2024.")
    assert "Q1 Q2 Q3" in figure.text and "Revenue chart" in figure.text  # the words the drawing shows
    assert "As shown in Figure 2, revenue doubled" in figure.text  # the sentence that refers to it
    assert figure.image is not None and figure.image.size == (512, 256)
    # the viewBox is honoured (HTML parsers lower-case it): the blue square fills the left half
    assert figure.image.getpixel((200, 128)) == BLUE and figure.image.getpixel((400, 240)) == (255, 255, 255)
    chunks = " ".join(item.text for item in only(result, "text"))
    assert "Quarterly review" in chunks and "Figure 2: Revenue by quarter" in chunks
    assert "Q1 Q2 Q3" not in chunks  # tick labels are the figure's words, not prose


def test_label_paragraph_below_or_above_its_figure_is_its_caption(tmp_path: Path) -> None:
    png(tmp_path / "a.png")
    png(tmp_path / "b.png")
    png(tmp_path / "c.png")
    below = tmp_path / "below.html"
    below.write_text(
        '<p><img src="a.png"></p><p>Figure 1: Apples sold.</p><p><img src="b.png"></p><p>Figure 2: Pears sold.</p>'
        '<p>Look at this <img src="c.png" alt="a pie of plums"> today.</p>'
    )
    above = tmp_path / "above.md"
    above.write_text("Figure 1: Apples sold.\n\n![](a.png)\n\nFigure 2: Pears sold.\n\n![](b.png)\n")
    for path in (below, above):
        figures = only(extract(path), "image")
        assert [(f.label, f.caption) for f in figures[:2]] == [
            ("Figure 1", "Figure 1: Apples sold."),
            ("Figure 2", "Figure 2: Pears sold."),
        ], path.name
    plums = only(extract(below), "image")[2]
    assert plums.label is None and plums.caption == "a pie of plums Look at this today."


def test_linked_and_standalone_svg_files(tmp_path: Path) -> None:
    (tmp_path / "linked.svg").write_text(CHART_SVG)
    (tmp_path / "alone.svg").write_text(CHART_SVG.replace("Q1 Q2 Q3", "Standalone words"))
    (tmp_path / "alone.txt").write_text("Sidecar caption.")
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\n![Figure 4: Share by region](linked.svg)\n\nFigure 4 shows the share by region.\n")
    (figure,) = only(extract(notes), "image")
    assert figure.label == "Figure 4" and figure.caption == "Figure 4: Share by region"
    assert figure.image_path == str(tmp_path / "linked.svg") and figure.image is not None
    assert colour_share(figure.image, BLUE) > 0.3
    (alone,) = only(extract(tmp_path / "alone.svg"), "image")
    assert alone.text == "Sidecar caption. Revenue chart Standalone words"
    assert alone.image is not None and colour_share(alone.image, BLUE) > 0.3
    candidates = {c.path.name for c in discover([tmp_path]).candidates}
    assert candidates == {"notes.md", "alone.svg"}  # linked.svg is shown by notes.md, alone.txt is a sidecar


def test_svg_linked_from_outside_the_root_is_refused(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "chart.svg").write_text(CHART_SVG)
    page = root / "page.html"
    page.write_text('<p>Intro text.</p><p><img src="../outside/chart.svg" alt="chart"></p>')
    result = extract(page)
    assert only(result, "image") == []
    assert any("points outside the indexed folders" in w for w in result.warnings), result.warnings


# SVG safety


class Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        Recorder.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/svg+xml")
        self.end_headers()
        self.wfile.write(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><rect fill="red"/></svg>')

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    """A web server on loopback that records every request made to it."""
    Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_loopback_recorder_sees_requests(loopback: str) -> None:
    """The recorder itself works (so an empty record below means nothing was fetched)."""
    from urllib.request import urlopen

    urlopen(f"{loopback}/probe").read()
    assert Recorder.requests == ["/probe"]


def test_svg_reads_no_url_no_file_outside_and_no_entity(tmp_path: Path, loopback: str) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("TOPSECRET-4711")
    (outside / "red.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">'
        '<rect id="r" width="100" height="50" fill="red"/><text id="t">TOPSECRET-4711</text></svg>'
    )
    png(outside / "red.png", RED)
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), BLUE).save(buffer, format="PNG")
    blue_png = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    (root / "links.svg").write_text(
        f"""<?xml version="1.0"?>
<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "{loopback}/svg11.dtd">
<?xml-stylesheet href="{loopback}/pi.css" type="text/css"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="200" height="100">
  <style>@import url("{loopback}/import.css"); rect {{ stroke: black }}</style>
  <image xlink:href="{loopback}/image.png" x="0" y="0" width="100" height="100"/>
  <image href="{(outside / "red.png").as_uri()}" x="0" y="0" width="100" height="100"/>
  <image href="../outside/red.png" x="0" y="0" width="100" height="100"/>
  <use href="{outside / "red.svg"}#r"/>
  <use xlink:href="../outside/red.svg#r"/>
  <rect width="50" height="50" fill="url({loopback}/paint.svg#p)"/>
  <filter id="f"><feImage href="{loopback}/fe.png"/></filter>
  <rect x="120" width="20" height="20" filter="url(#f)" style="cursor: url({loopback}/cursor.png)"/>
  <text><tref xlink:href="{outside / "red.svg"}#t"/></text>
  <image href="{blue_png}" x="150" y="50" width="50" height="50"/>
</svg>"""
    )
    (root / "entity.svg").write_text(
        f'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY s SYSTEM "{(outside / "secret.txt").as_uri()}">]>'
        '<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50"><text y="20">&s;</text></svg>'
    )
    (root / "page.html").write_text(
        f'<p>Report.</p><svg width="100" height="50"><image href="{loopback}/inline.png" width="9" height="9"/>'
        f'<use href="../outside/red.svg#r"/></svg>'
    )
    links = extract(root / "links.svg")
    (image,) = only(links, "image")
    assert image.image is not None
    assert colour_share(image.image, RED) == 0.0  # nothing from outside was drawn
    assert colour_share(image.image, BLUE) > 0.05  # the embedded data: image was
    assert any("links not followed" in w and loopback in w for w in links.warnings), links.warnings
    entity = extract(root / "entity.svg")
    assert entity.error is not None and "entities" in entity.error and entity.items == []
    page = extract(root / "page.html")
    (inline,) = only(page, "image")
    assert inline.image is not None and colour_share(inline.image, RED) == 0.0
    assert any("inline SVG" in w and "links not followed" in w for w in page.warnings), page.warnings
    everything = " ".join(item.text for r in (links, entity, page) for item in r.items)
    assert "TOPSECRET" not in everything and "TOPSECRET" not in (entity.error or "")
    time.sleep(0.2)
    assert Recorder.requests == []


def test_svg_size_and_cost_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "wide.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="50000">'
        '<rect width="100000" height="50000" fill="blue"/></svg>'
    )
    (tmp_path / "pattern.svg").write_text(  # CairoSVG would draw a 30000x30000 tile (3.5 GB)
        '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><defs><pattern id="p" '
        'patternUnits="userSpaceOnUse" width="30000" height="30000"><rect width="30000" height="30000"/></pattern>'
        '</defs><rect width="200" height="200" fill="url(#p)"/></svg>'
    )
    uses = "".join(f'<g id="g{i}"><use href="#g{i - 1}"/><use href="#g{i - 1}"/></g>' for i in range(1, 25))
    (tmp_path / "uses.svg").write_text(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><g id="g0"><rect/></g>{uses}</svg>'
    )
    (tmp_path / "loop.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"><g id="a"><use href="#a"/></g></svg>'
    )
    (tmp_path / "deep.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">' + "<g>" * 500 + "</g>" * 500 + "</svg>"
    )
    (tmp_path / "thin.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="10"/>')
    started = time.monotonic()
    (wide,) = only(extract(tmp_path / "wide.svg", keep_long_side=1024), "image")
    assert wide.image is not None and wide.image.size == (1024, 512) and colour_share(wide.image, BLUE) > 0.95
    (pattern,) = only(extract(tmp_path / "pattern.svg"), "image")
    assert pattern.image is not None and pattern.image.size == (512, 512)
    assert "more than 20000 elements" in str(extract(tmp_path / "uses.svg").error)
    assert "refers to itself" in str(extract(tmp_path / "loop.svg").error)
    assert "nested deeper than 64" in str(extract(tmp_path / "deep.svg").error)
    assert "more elongated" in str(extract(tmp_path / "thin.svg").error)
    assert time.monotonic() - started < 10


def test_broken_svg_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10"><rect')
    (tmp_path / "nosize.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><rect width="5"/></svg>')
    (tmp_path / "html.svg").write_text("<html><body>not a drawing</body></html>")
    (tmp_path / "page.html").write_text(
        '<p>Body text stays.</p><svg width="10" height="10"><rect></svg><p><img src="broken.svg"></p>'
    )
    for name, reason in [
        ("broken.svg", "not a well-formed SVG"),
        ("nosize.svg", "without a usable size"),
        ("html.svg", "not an SVG drawing"),
    ]:
        result = extract(tmp_path / name)
        assert result.error is not None and reason in result.error and "\n" not in result.error, name
    page = extract(tmp_path / "page.html")
    assert [item.kind for item in page.items] == ["text"]
    assert len(page.warnings) == 2 and all("left out: not a well-formed SVG" in w for w in page.warnings)


# tables


def test_html_and_markdown_tables(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<p>Intro. Table 1 lists headcount by team.</p>"
        "<table><caption>Table 1: Headcount</caption><tr><th>Team</th><th>People</th></tr>"
        "<tr><td>Sales | EU</td><td>17</td></tr><tr><td colspan=2>Total 17</td></tr></table>"
        "<table><tr><td>layout cell only</td></tr><tr><td>another</td></tr></table>"
    )
    notes = tmp_path / "notes.md"
    notes.write_text("Table 3: Regions\n\n| Region | Share |\n| --- | --- |\n| Europe | 38 |\n| Asia | 25 |\n")
    (table,) = only(extract(page), "table")
    assert table.locator == "table:0" and table.label == "Table 1" and table.caption == "Table 1: Headcount"
    assert table.text.startswith(
        "Table 1: Headcount\n| Team | People |\n| --- | --- |\n| Sales \\| EU | 17 |\n| Total 17 |  |"
    )
    assert table.text.endswith("\nTable 1 lists headcount by team.")  # the sentence that refers to it
    (regions,) = only(extract(notes), "table")
    assert regions.label == "Table 3" and regions.caption == "Table 3: Regions"
    assert regions.text == "Table 3: Regions\n| Region | Share |\n| --- | --- |\n| Europe | 38 |\n| Asia | 25 |"
    chunks = " ".join(item.text for item in only(extract(notes), "text"))
    assert "Europe" in chunks and "38" in chunks  # the table's words stay in the document's text too


def test_markdown_table() -> None:
    rows: list[list[str | None]] = [["A", "B|C", None], ["line one\nline two", "x"], []]
    assert markdown_table(rows) == (
        "| A | B\\|C |  |\n| --- | --- | --- |\n| line one<br>line two | x |  |\n|  |  |  |"
    )
    assert markdown_table([]) == ""
    assert (
        markdown_table([["h1", "h2"], ["a", "b"], ["c", "d"]], max_chars=40) == "| h1 | h2 |\n| --- | --- |\n| a | b |"
    )


ROWS = [["Region", "2023", "2024"], ["Europe", "38", "41"], ["Asia | Pacific", "25", "30"], ["Americas", "37", "29"]]


def table_pdf(path: Path) -> Path:
    """Page 1: a heading and a ruled table; page 2: the same table on a page turned by /Rotate 90; page 3: an empty
    grid (a chart's gridlines)."""
    from reportlab.lib import colors
    from reportlab.pdfgen import canvas
    from reportlab.platypus import Table, TableStyle

    c = canvas.Canvas(str(path), pagesize=(612, 792))
    for rotate in (0, 90):
        c.setPageRotation(rotate)
        if rotate == 0:
            c.drawString(100, 500, "Table 1: Revenue by region")
        table = Table(ROWS, colWidths=[120, 60, 60], rowHeights=20)
        table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.black)]))
        table.wrapOn(c, 400, 400)
        table.drawOn(c, 100, 300)  # 240 x 80 points, lower-left corner at (100, 300)
        c.showPage()
    c.setPageRotation(0)
    for i in range(6):
        c.line(100, 100 + 40 * i, 500, 100 + 40 * i)
        c.line(100 + 80 * i, 100, 100 + 80 * i, 300)
    c.showPage()
    c.save()
    return path


def drawn_box(path: Path, page: int) -> tuple[float, float, float, float]:
    """Where PDFium draws a page's ink, in points from the top-left of the page as displayed."""
    import numpy as np
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(path)
    try:
        dark = np.asarray(pdf[page - 1].render(scale=2).to_pil().convert("L")) < 128
    finally:
        pdf.close()
    ys, xs = np.nonzero(dark)
    return xs.min() / 2, ys.min() / 2, (xs.max() + 1) / 2, (ys.max() + 1) / 2


def test_pdf_tables_rows_markdown_and_boxes(tmp_path: Path) -> None:
    pdf = table_pdf(tmp_path / "tables.pdf")
    warnings: list[str] = []
    found = find_pdf_tables(pdf, [1, 2, 3], warnings=warnings)
    assert warnings == [] and sorted(found) == [1, 2]  # the empty grid is no table
    rows = [
        ["Region", "2023", "2024"],
        ["Europe", "38", "41"],
        ["Asia | Pacific", "25", "30"],
        ["Americas", "37", "29"],
    ]
    (upright,) = found[1]
    assert upright.page == 1 and upright.rows == rows
    assert upright.bbox == pytest.approx((100, 792 - 380, 340, 792 - 300), abs=1)
    assert upright.markdown.splitlines() == [
        "| Region | 2023 | 2024 |",
        "| --- | --- | --- |",
        "| Europe | 38 | 41 |",
        "| Asia \\| Pacific | 25 | 30 |",
        "| Americas | 37 | 29 |",
    ]
    (turned,) = found[2]
    assert turned.rows == rows  # read as its text runs, header first
    assert turned.markdown == upright.markdown
    assert turned.bbox == pytest.approx(drawn_box(pdf, 2), abs=1.5)  # where PDFium shows it on the turned page
    assert turned.bbox[2] - turned.bbox[0] == pytest.approx(80, abs=1)  # the turned page shows it 80 wide


def test_pdf_table_search_is_bounded(tmp_path: Path) -> None:
    from reportlab.pdfgen import canvas

    path = tmp_path / "grid.pdf"
    c = canvas.Canvas(str(path), pagesize=(612, 792))
    for i in range(101):
        c.line(50, 50 + 6.5 * i, 550, 50 + 6.5 * i)
        c.line(50 + 5 * i, 50, 50 + 5 * i, 700)
    c.drawString(60, 60, "x")
    c.showPage()
    c.save()
    warnings: list[str] = []
    started = time.monotonic()
    assert find_pdf_tables(path, [1], warnings=warnings) == {}
    assert time.monotonic() - started < 2  # unbounded, pdfplumber takes about 5 s here
    assert warnings == ["page 1: rules crossing 10201 times, too many to look for tables"]
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF")
    warnings = []
    assert find_pdf_tables(broken, [1], warnings=warnings) == {}
    assert len(warnings) == 1 and warnings[0].startswith("tables not read:")
