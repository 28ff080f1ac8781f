"""Word, PowerPoint and Excel files: text in reading order, tables, pictures, native charts as their exact data, page
images with LibreOffice (and a note without it), and hostile files refused with a reason (tests/office_corpus.py)."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import replace

import pytest

from mmrag.indexer.extract import ExtractOptions, extract_file
from mmrag.indexer.items import FileResult, Item
from tests.office_corpus import (
    BOMB_LIMIT,
    HELD_OUT_SEEDS,
    ChartTruth,
    OfficeCorpus,
    bad_office_files,
    make_office_corpus,
)

OPTIONS = ExtractOptions(office_pages=False)
HAS_SOFFICE = shutil.which("soffice") is not None or bool(os.environ.get("CI"))


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[OfficeCorpus, dict[str, FileResult]]]:
    found = []
    for seed in HELD_OUT_SEEDS:
        corpus = make_office_corpus(tmp_path_factory.mktemp(f"office-{seed}"), seed)
        results = {
            name: extract_file(corpus.folder / name, "sha", OPTIONS) for name in (corpus.docx, corpus.pptx, corpus.xlsx)
        }
        for name, result in results.items():
            assert result.error is None, (name, result.error)
            assert result.warnings == [], (name, result.warnings)
        found.append((corpus, results))
    return found


def _tables(text: str) -> list[list[list[str]]]:
    """The Markdown tables in a text, each as rows of cells (the separator row dropped)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("| "):
            if not line.startswith("| ---"):
                current.append([cell.strip() for cell in line.strip()[1:-1].split(" | ")])
        elif current:
            tables.append(current)
            current = []
    return tables


def _chart_item(truth: ChartTruth, items: list[Item]) -> Item:
    found = [item for item in items if item.origin == "chart-data" and f"chart: {truth.title}\n" in item.text]
    assert len(found) == 1, (truth.title, [item.text[:80] for item in items if item.origin])
    return found[0]


def test_every_chart_is_stored_as_its_exact_data_with_a_picture_drawn_from_it(corpora):
    checked = 0
    for corpus, results in corpora:
        for truth in corpus.charts:
            item = _chart_item(truth, results[truth.file].items)
            assert item.kind == "image" and item.image is not None and item.image.size == (800, 600)
            assert item.thumbnail and item.shape
            assert f"{truth.type.capitalize()} chart: {truth.title}" in item.text
            assert item.page == truth.slide
            if truth.sheet is not None:
                assert item.shape.startswith(f'Sheet "{truth.sheet}": ')
            if truth.caption is not None:  # the docx caption under the chart
                assert item.caption == truth.caption and item.label == "Figure 2"
            tables = _tables(item.text)
            for series in truth.series:
                table = next(t for t in tables if series.name in t[0][1:])
                if truth.category_title:
                    assert table[0][0] == truth.category_title
                column = table[0].index(series.name)
                assert [row[0] for row in table[1:]] == series.categories
                assert [row[column] for row in table[1:]] == series.values
            checked += 1
    assert checked >= 16


def test_slides_read_title_first_then_top_to_bottom_then_notes(corpora):
    for corpus, results in corpora:
        items = results[corpus.pptx].items
        for slide in corpus.slides:
            text = "\n".join(i.text for i in items if i.kind == "text" and i.page == slide.slide)
            positions = [text.find(part) for part in slide.order]
            assert -1 not in positions and positions == sorted(positions), (slide.order, text)
            assert text.startswith(slide.order[0])
            if slide.notes:
                assert f"Notes: {slide.notes}" in text
                assert text.index("Notes: ") > positions[-1]
        locators = {i.locator for i in items}
        assert "slide:2:chunk:0" in locators


def test_tables_become_markdown_table_items(corpora):
    for corpus, results in corpora:
        for truth in corpus.tables:
            items = [i for i in results[truth.file].items if i.kind == "table"]
            rows = [row for item in items for table in _tables(item.text) for row in table]
            for row in truth.cells:
                assert row in rows, (truth.file, row)
            if truth.caption is not None:
                owner = next(i for i in items if truth.caption in i.text)
                assert owner.page == truth.slide
                if truth.file.endswith(".docx"):
                    assert owner.label == "Table 1" and owner.caption == truth.caption
            if truth.sheet is not None:
                mine = [i for i in items if i.shape == f'Sheet "{truth.sheet}"']
                assert len(mine) == -(-(len(truth.cells) - 1) // 50)  # tables of 50 rows, the header repeated
                assert all(_tables(i.text)[0][0] == truth.cells[0] for i in mine)


def test_pictures_carry_their_caption_or_alt_text(corpora):
    for corpus, results in corpora:
        for truth in corpus.pictures:
            pictures = [i for i in results[truth.file].items if i.kind == "image" and i.origin is None]
            assert len(pictures) == 1 and pictures[0].image is not None and pictures[0].shape
            picture = pictures[0]
            assert truth.alt in picture.text
            assert picture.page == truth.slide
            if truth.caption:
                assert picture.caption == truth.caption and picture.label == "Figure 1"
            elif truth.alt:
                assert picture.caption == truth.alt


def test_bad_office_files_each_give_their_reason(tmp_path):
    options = replace(OPTIONS, max_unzipped_bytes=BOMB_LIMIT)
    for case in bad_office_files(tmp_path):
        result = extract_file(case.path, "sha", options)
        if case.reason:
            assert result.error is not None and "\n" not in result.error, case.path.name
            assert any(fragment in result.error.lower() for fragment in case.reason), (case.path.name, result.error)
            assert result.items == []
        else:
            assert result.error is None and result.items, (case.path.name, result.error)
        if case.warning:
            assert any(case.warning in w for w in result.warnings), (case.path.name, result.warnings)
    bomb = extract_file(tmp_path / "bomb.docx", "sha", options)
    assert "MMRAG_MAX_UNZIPPED_MB" in (bomb.error or "")


def test_a_chart_that_cannot_be_read_costs_only_that_chart(tmp_path, corpora):
    corpus = corpora[0][0]
    broken = tmp_path / "broken-chart.pptx"
    with zipfile.ZipFile(corpus.folder / corpus.pptx) as old, zipfile.ZipFile(broken, "w") as new:
        for info in old.infolist():
            data = old.read(info)
            if info.filename == "ppt/charts/chart1.xml":
                data = b'<c:chartSpace xmlns:c="http://schemas.openxmlformats.org/drawingml/2006/chart"><c:chart/></c:chartSpace>'
            new.writestr(info, data)
    result = extract_file(broken, "sha", OPTIONS)
    assert result.error is None
    assert any("chart data not read" in w for w in result.warnings)
    charts = [i for i in result.items if i.origin == "chart-data"]
    assert len(charts) == len([c for c in corpus.charts if c.file == corpus.pptx]) - 1
    assert any(i.kind == "table" for i in result.items)


def test_text_past_the_limit_is_cut_with_a_warning(corpora):
    corpus = corpora[0][0]
    result = extract_file(corpus.folder / corpus.docx, "sha", replace(OPTIONS, max_text_bytes=200))
    assert result.error is None
    assert any("MMRAG_MAX_TEXT_MB" in w for w in result.warnings)
    assert sum(len(i.text) for i in result.items if i.kind == "text") <= 200


def test_without_libreoffice_no_page_images_and_a_note(corpora):
    corpus = corpora[0][0]
    options = replace(OPTIONS, office_pages=True, soffice="no-such-soffice")
    result = extract_file(corpus.folder / corpus.pptx, "sha", options)
    assert result.error is None and result.items
    assert not [i for i in result.items if i.kind == "page"]
    assert any("LibreOffice" in note for note in result.notes)
    assert result.warnings == []


@pytest.mark.skipif(not HAS_SOFFICE, reason="LibreOffice (soffice) is not installed")
def test_with_libreoffice_pages_are_rendered_and_linked(corpora):
    corpus = corpora[0][0]
    options = replace(OPTIONS, office_pages=True)
    slides = extract_file(corpus.folder / corpus.pptx, "sha", options)
    assert slides.error is None, slides.error
    pages = [i for i in slides.items if i.kind == "page"]
    assert [p.page for p in pages] == list(range(1, len(corpus.slides) + 1))
    assert all(p.image is not None and len(p.text) <= 1000 for p in pages)
    assert pages[1].text and corpus.slides[1].order[0] in " ".join(pages[1].text.split())
    for truth in (c for c in corpus.charts if c.file == corpus.pptx):
        assert _chart_item(truth, slides.items).page == truth.slide
    report = extract_file(corpus.folder / corpus.docx, "sha", options)
    assert report.error is None, report.error
    assert [i for i in report.items if i.kind == "page"]
    table = next(i for i in report.items if i.kind == "table")
    assert table.page is not None
    assert next(i for i in report.items if i.locator == "chunk:0").page == 1


@pytest.mark.skipif(not HAS_SOFFICE, reason="LibreOffice (soffice) is not installed")
def test_a_hidden_slide_does_not_shift_the_slide_images(tmp_path):
    """LibreOffice prints no hidden slide: the image of slide 3 is the PDF's page 2, and is numbered 3."""
    from pptx import Presentation

    deck = Presentation()
    for n in (1, 2, 3):
        deck.slides.add_slide(deck.slide_layouts[1]).shapes.title.text = f"Quarterly slide {n} heading"
    deck.slides[1]._element.set("show", "0")
    deck.save(tmp_path / "deck.pptx")
    result = extract_file(tmp_path / "deck.pptx", "sha", replace(OPTIONS, office_pages=True))
    assert result.error is None, result.error
    pages = {item.page: item for item in result.items if item.kind == "page"}
    assert sorted(pages) == [1, 3] and "slide 3 heading" in pages[3].text and pages[3].locator == "page:3"
    titles = [item for item in result.items if item.kind == "text" and "slide 2 heading" in item.text]
    assert [item.page for item in titles] == [2]  # the hidden slide's text is still indexed, under its number
