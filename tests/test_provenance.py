"""Provenance: every search, answer and batch line says where each source is (file, page, figure or table label,
caption, box) and how to see it; `mmrag crop` writes a figure's crop; the UI shows it. A real Weaviate, the tiny
profile, and a reportlab PDF with a vector bar chart ("Figure 2") and a ruled table ("Table 1") on its page 2."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from reportlab.graphics.charts.barcharts import VerticalBarChart
from reportlab.graphics.renderPDF import draw
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from streamlit.testing.v1 import AppTest

from mmrag.commands.ui import APP
from mmrag.core.client import connect
from mmrag.core.server import LocalWeaviate
from mmrag.core.settings import Settings
from mmrag.indexer.extract import ExtractOptions, extract_file, file_digest
from mmrag.indexer.items import Item
from mmrag.indexer.pipeline import IndexReport
from mmrag.rag_app.service import source_images
from mmrag.rag_app.sources import CROP_PAD, Source, SourceImages
from mmrag.ui import chat
from tests.helpers import MMRAG_SCRIPT, NO_SETTINGS_FILES, SOURCE_KEYS, cli_env, module_settings, run_cli

pytestmark = pytest.mark.slow  # a corpus of PDFs indexed, searched and asked through the CLI

FIGURE_LABEL = "report.pdf p.2, Figure 2: Revenue by region"
TABLE_LABEL = "report.pdf p.2, Table 1: Headcount by office"
TABLES_PENDING = "no 'Table 1' table item: the ruled table was not found (indexer/tables.py)"
HIGHLIGHT = (230, 40, 40)
RED_BOX = (50.0, 100.0, 170.0, 160.0)
"""A red rectangle on the rotated page, in PDF user space (left, bottom, right, top)."""
RED_BOX_SHOWN = (100.0, 50.0, 160.0, 170.0)
"""The same rectangle on the page as displayed (/Rotate 90: clockwise), (x0, top, x1, bottom) from its top-left."""


def write_report(path: Path) -> Path:
    """Page 1: text. Page 2: a sentence citing Figure 2, a vector bar chart with its caption below, and a ruled
    table with its caption above."""
    pdf = canvas.Canvas(str(path), pagesize=A4)
    height = A4[1]
    pdf.setFont("Helvetica-Bold", 16)
    pdf.drawString(72, height - 72, "Annual report 2024")
    pdf.setFont("Helvetica", 11)
    pdf.drawString(72, height - 100, "The company opened two offices and hired staff across Europe.")
    pdf.showPage()
    pdf.setFont("Helvetica", 11)
    pdf.drawString(72, height - 72, "Sales grew in every region. As shown in Figure 2, the north led with 30 million.")
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 40, 30, 240, 150
    chart.data = [(12, 30, 22, 18)]
    chart.valueAxis.valueMin = 0
    chart.categoryAxis.categoryNames = ["North", "South", "East", "West"]
    drawing = Drawing(300, 200)
    drawing.add(chart)
    draw(drawing, pdf, 100, height - 320)
    pdf.drawString(100, height - 340, "Figure 2: Revenue by region")
    pdf.drawString(100, height - 420, "Table 1: Headcount by office")
    top = height - 430
    for row, (office, staff) in enumerate([("Office", "Staff"), ("Berlin", "12"), ("Madrid", "9")]):
        y = top - 18 * (row + 1)
        pdf.rect(100, y, 120, 18)
        pdf.rect(220, y, 80, 18)
        pdf.drawString(105, y + 5, office)
        pdf.drawString(225, y + 5, staff)
    pdf.showPage()
    pdf.save()
    return path


def write_rotated(path: Path) -> Path:
    """One page shown landscape 400x300 through /Rotate 90 (a portrait 300x400 media box): a red and a blue box."""
    pdf = canvas.Canvas(str(path), pagesize=(400, 300))
    pdf.setPageRotation(90)  # reportlab: `pagesize` is the page as displayed; drawing is in the media box
    pdf.setFillColorRGB(1, 0, 0)
    left, bottom, right, top = RED_BOX
    pdf.rect(left, bottom, right - left, top - bottom, fill=1, stroke=0)
    pdf.setFillColorRGB(0, 0, 1)
    pdf.rect(220, 300, 60, 80, fill=1, stroke=0)
    pdf.showPage()
    pdf.save()
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("provenance")
    write_report(root / "report.pdf")
    (root / "notes.md").write_text("# Notes\n\nThe Madrid office opened in March with nine people.\n")
    return root


@pytest.fixture(scope="module")
def indexed(weaviate_server: LocalWeaviate, corpus: Path) -> tuple[Settings, dict[str, Any]]:
    """The corpus indexed once through `mmrag index --json`: the settings and the index report."""
    settings = module_settings(weaviate_server, "P")
    result = run_cli(cli_env(settings), "index", str(corpus), "--workers", "0", "--json")
    assert result.returncode == 0, result.stderr
    return settings, json.loads(result.stdout)


def search(settings: Settings, query: str, *args: str) -> list[dict[str, Any]]:
    result = run_cli(cli_env(settings), "search", query, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["results"]


def find(results: list[dict[str, Any]], figure_label: str) -> dict[str, Any]:
    found = [r for r in results if r["figure_label"] == figure_label]
    assert found, f"no source labelled {figure_label!r} in {[r['label'] for r in results]}"
    return found[0]


def items_of(path: Path) -> list[Item]:
    result = extract_file(path, file_digest([path]), ExtractOptions())
    assert result.error is None, result.error
    return result.items


# Extraction, as this feature relies on it


def test_the_report_has_a_labelled_figure_and_table(corpus: Path) -> None:
    items = items_of(corpus / "report.pdf")
    figures = [i for i in items if i.kind == "image" and i.label == "Figure 2"]
    assert figures, f"no 'Figure 2' figure item: {[(i.kind, i.locator, i.label) for i in items]}"
    figure = figures[0]
    assert figure.page == 2 and figure.bbox is not None and figure.caption == "Figure 2: Revenue by region"
    assert ":figure:" in figure.locator
    tables = [i for i in items if i.kind == "table" and i.label == "Table 1"]
    assert tables, TABLES_PENDING
    assert tables[0].page == 2 and tables[0].bbox is not None and "Berlin" in tables[0].text


# The index report


def test_index_report_counts_pages_figures_and_tables(indexed: tuple[Settings, dict[str, Any]]) -> None:
    _, report = indexed
    found = report["found"]
    assert set(found) == {"pages", "figures", "charts", "tables", "images", "chunks", "ocr"}
    assert found["charts"] == found["ocr"] == 0  # no Office chart, no scanned page
    assert found["chunks"] >= 3  # two pages of text and the Markdown note
    assert found["tables"] == 1, TABLES_PENDING  # (until then the table is found as a second figure)
    assert (found["pages"], found["figures"], found["images"]) == (2, 1, 0)


def test_index_summary_line() -> None:
    report = IndexReport(found=Counter(pages=12, figures=7, tables=2, chunks=1))
    assert report.found_line() == "12 pages, 7 figures, 2 tables, 1 text chunk"
    assert IndexReport(found=Counter(images=3)).found_line() == "0 pages, 0 figures, 0 tables, 3 images"
    office = IndexReport(found=Counter(pages=4, charts=2, chunks=9, ocr=1))
    assert office.found_line() == "4 pages, 0 figures, 2 native charts, 0 tables, 9 text chunks, 1 OCR text chunk"


def shown(source: dict[str, Any], label: str) -> str:
    """`label` as the commands show it: the corpus is not under the current folder, so its files are named by their
    absolute path."""
    assert source["path"] == source["source_path"] and source["path"].endswith("/" + source["source"])
    return source["path"].removesuffix(source["source"]) + label


# Labels


def source(**fields: Any) -> Source:
    values: dict[str, Any] = {
        "n": 1,
        "id": "0b9f0d2e-1c1a-5d7e-8e7f-000000000001",
        "kind": "image",
        "source": "report.pdf",
        "source_path": str(Path.cwd() / "reports" / "report.pdf"),  # shown relative to the current folder
        "page": 4,
        "score": 0.03,
        "text": "Figure 2: Revenue by region",
    }
    return Source(**(values | fields))


def test_labels_say_file_page_label_and_caption() -> None:
    figure = source(figure_label="Figure 2", caption="Figure 2: Revenue by region. Bars show millions of euros.")
    assert figure.label == "reports/report.pdf p.4, Figure 2: Revenue by region"
    table = source(kind="table", page=3, figure_label="Table 1", caption="Table 1 – Headcount by office")
    assert table.label == "reports/report.pdf p.3, Table 1: Headcount by office"
    long = source(figure_label="Fig. 3", caption="Fig. 3. " + "Very long caption words " * 10)
    assert long.label.startswith("reports/report.pdf p.4, Fig. 3: Very long caption") and long.label.endswith("…")
    assert len(long.label) < 110
    sentence = source(figure_label="Figure 5", caption="Figure 5 shows the revenue split by region.")
    assert sentence.label == "reports/report.pdf p.4, Figure 5 shows the revenue split by region"
    assert source(figure_label="Figure 6", caption=None).label == "reports/report.pdf p.4, Figure 6"
    assert source(figure_label="Figure 7", caption="Revenue").label == "reports/report.pdf p.4, Figure 7: Revenue"
    assert source(bbox=(1.0, 2.0, 3.0, 4.0)).label == "reports/report.pdf p.4, figure"
    assert source(kind="page").label == "reports/report.pdf p.4"
    html = source(source_path="/elsewhere/page.html", page=None, figure_label="Figure 1", caption="Figure 1: Temps")
    assert html.label == "/elsewhere/page.html, Figure 1: Temps"  # not under the current folder: absolute
    deck = source(source_path="/elsewhere/deck.pptx", page=3, kind="image", shape="Chart 2", origin="chart-data")
    assert deck.label == "/elsewhere/deck.pptx slide 3, Chart 2"
    book = source(source_path="/elsewhere/book.xlsx", page=None, kind="table", shape='Sheet "Sales": Table 1')
    assert book.label == '/elsewhere/book.xlsx, Sheet "Sales": Table 1'


def test_the_prompt_names_files_as_indexed_whatever_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """People see the unambiguous path (relative to where they are, else absolute); the VLM reads the file as it was
    indexed, the same prompt from any folder and never an absolute path."""
    (tmp_path / "elsewhere").mkdir()
    figure = source(figure_label="Figure 2", caption="Figure 2: Revenue", source_path=str(tmp_path / "reports/a.pdf"))
    shown, prompts = [], []
    for folder in (tmp_path, tmp_path / "elsewhere"):
        monkeypatch.chdir(folder)
        shown.append(figure.label)
        prompts.append({figure.context_item(as_image=True).label, figure.context_item(as_image=False).label})
    assert shown == ["reports/a.pdf p.4, Figure 2: Revenue", f"{tmp_path}/reports/a.pdf p.4, Figure 2: Revenue"]
    assert prompts == [{"report.pdf p.4, Figure 2: Revenue"}] * 2


def test_json_says_how_to_see_each_source() -> None:
    figure = source(figure_label="Figure 2", caption="Figure 2: Revenue", bbox=(72.0, 100.25, 300.0, 320.0))
    row = figure.as_json()
    assert set(row) == SOURCE_KEYS
    assert row["image"] == f"mmrag crop {figure.id} -o report_p4_figure-2.png"
    assert row["bbox"] == [72.0, 100.2, 300.0, 320.0] and row["text_similarity"] is None
    assert source(image_path="/data/charts/q4.png", page=None).as_json()["image"] == "/data/charts/q4.png"
    assert source(kind="text").as_json()["image"] is None
    assert source(kind="page").as_json()["image"].endswith("-o report_p4_page.png")
    assert source(text="word " * 400).as_json()["text"].endswith("…")


# Outputs of the commands


def test_search_json_gives_each_source_its_provenance(indexed: tuple[Settings, dict[str, Any]], corpus: Path) -> None:
    settings, _ = indexed
    results = search(settings, "revenue by region", "--k", "8")
    assert results and all(set(r) == SOURCE_KEYS for r in results)
    figure = find(search(settings, "revenue by region", "--kind", "image"), "Figure 2")
    assert figure["label"] == shown(figure, FIGURE_LABEL) and figure["caption"] == "Figure 2: Revenue by region"
    assert (figure["kind"], figure["source"], figure["page"]) == ("image", "report.pdf", 2)
    assert figure["source_path"] == str((corpus / "report.pdf").resolve())
    assert figure["image"] == f"mmrag crop {figure['id']} -o report_p2_figure-2.png"
    x0, top, x1, bottom = figure["bbox"]
    assert 0 <= x0 < x1 <= A4[0] and 0 <= top < bottom <= A4[1]
    assert "Revenue by region" in figure["text"] and "North" in figure["text"]  # caption and the chart's own words
    assert figure["score"] > 0 and figure["text_similarity"] is not None and figure["clip_similarity"] is not None
    assert figure["bm25"] is not None
    tables = search(settings, "headcount by office", "--kind", "table")
    assert tables, TABLES_PENDING
    table = find(tables, "Table 1")
    assert table["label"] == shown(table, TABLE_LABEL) and table["kind"] == "table" and table["bbox"] is not None
    assert "Berlin" in table["text"] and table["image"].startswith(f"mmrag crop {table['id']} -o ")


def test_ask_json_cites_the_figure_with_its_provenance(indexed: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = indexed
    result = run_cli(cli_env(settings, MMRAG_MAX_NEW_TOKENS="6"), "ask", "Revenue by region?", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["sources"] and all(set(s) == SOURCE_KEYS for s in answer["sources"])
    figure = find(answer["sources"], "Figure 2")
    assert figure["label"] == shown(figure, FIGURE_LABEL)


def test_batch_lines_carry_provenance(indexed: tuple[Settings, dict[str, Any]], tmp_path: Path) -> None:
    settings, _ = indexed
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"id": "rev", "question": "Revenue by region?"}) + "\n")
    out = tmp_path / "answers.jsonl"
    result = run_cli(cli_env(settings), "batch", str(questions), "--out", str(out), "--retrieval-only", "--json")
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(text) for text in out.read_text().splitlines()]
    assert line["sources"] and all(set(s) == SOURCE_KEYS for s in line["sources"])
    figure = find(line["sources"], "Figure 2")
    assert figure["label"] == shown(figure, FIGURE_LABEL)
    assert figure["bbox"] and figure["image"].startswith("mmrag crop ")


def test_crop_writes_the_figure_and_refuses_unknown_ids(
    indexed: tuple[Settings, dict[str, Any]], corpus: Path, tmp_path: Path
) -> None:
    settings, _ = indexed
    figure = find(search(settings, "revenue by region", "--kind", "image"), "Figure 2")
    env = cli_env(settings)
    result = run_cli(env, "crop", figure["id"], "-o", str(tmp_path / "fig.png"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'fig.png'} (") and FIGURE_LABEL in result.stdout
    crop = Image.open(tmp_path / "fig.png")
    assert max(crop.size) >= 1500  # rendered for reading, not the page's 1024 px
    assert crop.width / crop.height == pytest.approx(aspect(figure["bbox"]), rel=0.01)
    assert _share(crop, lambda p: p[0] > 200 and p[1] < 60 and p[2] < 60) > 0.05  # reportlab's red bars

    by_name = subprocess.run([MMRAG_SCRIPT, "crop", figure["id"]], env=env, cwd=tmp_path, capture_output=True)
    assert by_name.returncode == 0, by_name.stderr
    assert (tmp_path / "report_p2_figure-2.png").is_file()  # default name: file, page, label

    for bad_id, message in [
        ("00000000-0000-0000-0000-000000000000", "no object 00000000-0000-0000-0000-000000000000"),
        ("not-an-id", "is not an object id"),
    ]:
        failed = run_cli(env, "crop", bad_id)
        assert failed.returncode == 1 and message in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    text = search(settings, "Madrid office opened", "--kind", "text", "--source", str(corpus / "notes.md"))[0]
    no_image = run_cli(env, "crop", text["id"])
    assert no_image.returncode == 1 and "has no image" in no_image.stderr, no_image.stderr


# Pixels


def _share(image: Image.Image, test: Any) -> float:
    pixels = list(image.convert("RGB").resize((64, 64)).get_flattened_data())
    return sum(1 for p in pixels if test(p)) / len(pixels)


def aspect(box: Any) -> float:
    """Width / height of a box's crop (the pad included)."""
    x0, top, x1, bottom = box
    return float((x1 - x0 + 2 * CROP_PAD) / (bottom - top + 2 * CROP_PAD))


def area(box: Any) -> float:
    x0, top, x1, bottom = box
    return float((x1 - x0) * (bottom - top))


def grey_difference(a: Image.Image, b: Image.Image, side: int = 96) -> float:
    """Mean absolute difference of two images' grey levels (0-255), both resized to side x side."""
    import numpy as np

    grey_a, grey_b = (np.asarray(i.resize((side, side)).convert("L"), dtype=np.float64) for i in (a, b))
    return float(np.abs(grey_a - grey_b).mean())


def highlighted_above(page: Image.Image, x0: int, x1: int, top: int) -> bool:
    """Whether a highlight line runs just above the box's top edge (within a few pixels)."""
    rows = [Counter(page.getpixel((x, y)) for x in range(x0, x1)) for y in range(top - 8, top)]
    return any(row.most_common(1)[0][0] == HIGHLIGHT for row in rows)


def test_crop_and_highlight_on_a_rotated_page(indexed: tuple[Settings, dict[str, Any]], tmp_path: Path) -> None:
    settings, _ = indexed
    pdf = write_rotated(tmp_path / "rotated.pdf")
    meta = {"id": "none", "kind": "image", "source_path": str(pdf), "page": 1, "bbox": list(RED_BOX_SHOWN)}
    with connect(settings) as client:
        images = source_images(client, settings.collection)
        crop = images.load(meta)
        page = images.highlighted(meta)
    assert crop is not None and crop.height == 1536  # 60 x 120 points (and the pad): long side 1536 px
    assert crop.width / crop.height == pytest.approx(aspect(RED_BOX_SHOWN), rel=0.01)
    assert _share(crop, lambda p: p == (255, 0, 0)) > 0.75  # the red box, a thin white pad around it
    assert _share(crop, lambda p: p[2] > 128 and p[0] < 128) == 0  # not the blue box next to it
    assert crop.getpixel((2, 2)) == crop.getpixel((crop.width - 3, crop.height - 3)) == (255, 255, 255)
    assert page is not None and page.size == (1024, 768)  # landscape, as displayed
    scale = 1024 / 400
    x0, top, x1, bottom = (round(v * scale) for v in RED_BOX_SHOWN)
    assert page.getpixel(((x0 + x1) // 2, (top + bottom) // 2)) == (255, 0, 0)
    assert highlighted_above(page, x0, x1, top)
    assert page.getpixel((x1 + 40, top - 4)) == (255, 255, 255)


def test_crop_matches_the_extracted_figure_on_a_rotated_report(tmp_path: Path) -> None:
    """The box the detector stores and the crop rendered from it show the same chart, rotation included."""
    path = tmp_path / "rotated_report.pdf"
    write_report(tmp_path / "upright.pdf")
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(tmp_path / "upright.pdf").pages:
        writer.add_page(page.rotate(90))
    writer.write(path)
    items = items_of(path)
    figures = [i for i in items if i.kind == "image" and i.bbox is not None and i.image is not None]
    # the page is shown sideways, its text upright in the page's own space: still read as text reads
    assert [f.label for f in figures] == ["Figure 2"]
    assert [t.label for t in items if t.kind == "table"] == ["Table 1"]
    figure = figures[0]
    assert figure.bbox is not None and figure.image is not None
    meta = {"id": "none", "kind": "image", "source_path": str(path), "page": 2, "bbox": list(figure.bbox)}
    crop = SourceImages(store=None).load(meta)  # type: ignore[arg-type]  # the crop needs no Weaviate
    assert crop is not None and crop.height > crop.width  # the chart is wider than tall, turned a quarter
    assert grey_difference(figure.image, crop, side=32) < 16  # ~8 here (the detector pads its crop); 30 points off: ~32


# The page


def test_ui_shows_figure_crop_caption_and_table(
    indexed: tuple[Settings, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = indexed
    for key in [k for k in os.environ if k.startswith("MMRAG_") and k not in NO_SETTINGS_FILES]:
        monkeypatch.delenv(key)
    for key, value in cli_env(settings, MMRAG_K="8").items():
        monkeypatch.setenv(key, value)
    app = AppTest.from_file(str(APP), default_timeout=120).run()
    app.sidebar.toggle[0].set_value(True)  # retrieval only
    app.chat_input[0].set_value("Revenue by region and headcount by office").run()
    assert not app.exception, app.exception
    lines = [md.value.replace("\\", "") for md in app.main.markdown]
    assert any(re.fullmatch(rf"\*\*\[\d+\]\*\* (\S+/)?{re.escape(FIGURE_LABEL)}", line) for line in lines), lines
    captions = [c.value.replace("\\", "") for c in app.main.caption]
    assert "Figure 2: Revenue by region" in captions
    assert len(app.main.image) >= 1
    table = rf"\*\*\[\d+\]\*\* (\S+/)?{re.escape(TABLE_LABEL)}"  # the corpus is not under the current folder
    assert any(re.fullmatch(table, line) for line in lines), TABLES_PENDING
    assert any(line.startswith("| Office | Staff |") for line in lines), lines


def test_enlarge_shows_the_figure_highlighted_on_its_page(indexed: tuple[Settings, dict[str, Any]]) -> None:
    settings, _ = indexed
    figure = find(search(settings, "revenue by region", "--kind", "image"), "Figure 2")
    cited = Source(
        n=1,
        id=figure["id"],
        kind="image",
        source="report.pdf",
        source_path=figure["source_path"],
        page=2,
        score=figure["score"],
        text="",
        bbox=tuple(figure["bbox"]),
    )
    with connect(settings) as client:
        page = chat.full_image(client, settings.collection, cited)
    assert page is not None and page.size == (725, 1024)  # the whole A4 page
    scale = 1024 / A4[1]
    x0, top, x1, _ = (round(v * scale) for v in figure["bbox"])
    assert highlighted_above(page, x0, x1, top)


def test_the_answer_prompt_gets_the_figure_crop_not_the_page(indexed: tuple[Settings, dict[str, Any]]) -> None:
    from mmrag.rag_app.service import make_generator, open_chain

    settings, _ = indexed
    with open_chain(settings, generator=make_generator(settings)) as chain:  # the VLM never loads: prompt only
        prepared = chain.prepare("Revenue by region?", chain.options.replace(kinds=["image"]))
    assert prepared.request is not None
    position, figure = next((i, s) for i, s in enumerate(prepared.sources) if s.figure_label == "Figure 2")
    assert position < len(prepared.request.images)
    image = prepared.request.images[position]
    assert max(image.size) >= 1500 and image.width / image.height == pytest.approx(aspect(figure.bbox), rel=0.01)
    assert figure.label.endswith("/" + FIGURE_LABEL)  # its file by its absolute path: not under the current folder
    assert f"[{figure.n}] (image) {FIGURE_LABEL}." in prepared.request.prompt_text  # under its rank number, as indexed


def test_a_table_shows_as_markdown_with_every_cell_escaped() -> None:
    text = "Table 1: Offices\n\n| Office | Notes |\n| --- | --- |\n| [Berlin](http://x.test) | 1\\|2<br>*new* |"
    assert chat.table_markdown(text) == (
        "| Office | Notes |\n| --- | --- |\n| \\[Berlin\\](http://x.test) | 1\\|2 \\*new\\* |"
    )
    assert chat.table_markdown("Table 1: no rows here") is None
