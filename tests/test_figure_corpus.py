"""Figures and tables found in PDFs and HTML, judged against a held-out corpus whose truth was recorded as it was
written (tests/figure_corpus.py): the same targets as bench/figures.py, on a small corpus.

Tests whose message starts with "figure detection:" exercise indexer/figures.py and indexer/tables.py through
`extract_file`; they fail, saying what is missing, until the detector meets them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from mmrag.indexer.extract import ExtractOptions, extract_file, file_digest
from tests.figure_corpus import (
    HELD_OUT_SEEDS,
    LAYOUTS,
    Box,
    Corpus,
    Extraction,
    PageTruth,
    Score,
    extract_corpus,
    figure_boxes,
    iou,
    make_corpus,
    normalize,
    score,
)

pytestmark = pytest.mark.slow  # the whole figure corpus through extraction

MARKDOWN_RULE = re.compile(r"\|\s*:?-{3,}:?\s*\|")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("figure-corpus"), HELD_OUT_SEEDS[0], pages=12)


@pytest.fixture(scope="module")
def extraction(corpus: Corpus) -> Extraction:
    return extract_corpus(corpus, ExtractOptions())


@pytest.fixture(scope="module")
def results(extraction: Extraction) -> dict[str, list[Any]]:
    return extraction.items


@pytest.fixture(scope="module")
def scored(corpus: Corpus, extraction: Extraction) -> Score:
    return score(corpus, extraction)


def pdf_pages(corpus: Corpus) -> list[tuple[Path, PageTruth]]:
    return [(corpus.folder / f.name, p) for f in corpus.files for p in f.pages if p.number is not None]


def detector(what: str, problems: Sequence[str] = ()) -> str:
    listed = "".join(f"\n  {p}" for p in problems[:15])
    more = f"\n  ... and {len(problems) - 15} more" if len(problems) > 15 else ""
    return f"figure detection: {what}{listed}{more}"


def on_page(items: list[Any], number: int | None, kind: str) -> list[Any]:
    return [i for i in items if i.page == number and i.kind == kind]


def best_match(box: Box, items: list[Any]) -> Any | None:
    """The item whose box overlaps `box` most, if it does by IoU >= 0.5."""
    value, item = max(((iou(box, i.bbox), i) for i in items if i.bbox), key=lambda p: p[0], default=(0.0, None))
    return item if value >= 0.5 else None


def test_truth_lies_on_its_pages_and_captions_are_printed(corpus: Corpus) -> None:
    """The generator's own check: every box inside its page, every caption in the page's text as printed, every
    page type present, the rotated page really rotated."""
    import pypdfium2 as pdfium

    layouts = {p.layout for f in corpus.files for p in f.pages}
    assert set(LAYOUTS) - {"mixed"} <= layouts
    pages = pdf_pages(corpus)
    for page, box in figure_boxes(p for _, p in pages):
        width, height = page.size
        assert 0 <= box[0] < box[2] <= width and 0 <= box[1] < box[3] <= height, (page, box)
        assert box[2] - box[0] > 40 and box[3] - box[1] > 40, (page, box)
    for path, page in pages:
        pdf = pdfium.PdfDocument(path)
        try:
            pdf_page = pdf[(page.number or 1) - 1]
            assert pdf_page.get_rotation() == page.rotation
            text = normalize(pdf_page.get_textpage().get_text_range())
        finally:
            pdf.close()
        captions = [f.caption for f in page.figures] + [t.caption for t in page.tables]
        for caption in filter(None, captions):
            assert caption in text, (path.name, page.number, caption)
    rotated = [p for _, p in pages if p.rotation]
    assert len(rotated) == 1 and rotated[0].size[0] > rotated[0].size[1] and rotated[0].figures


def test_every_file_is_extracted(extraction: Extraction) -> None:
    assert not extraction.errors, extraction.errors


def test_figures_are_found(scored: Score) -> None:
    t = scored.total
    assert t.recall >= 0.95 and t.precision >= 0.90, detector(
        f"recall {t.recall:.2f} (>= 0.95), precision {t.precision:.2f} (>= 0.90) over {t.figures} figures",
        [p for p in scored.problems if "missed" in p or "extra" in p],
    )


def test_captions_are_exactly_as_printed(scored: Score) -> None:
    t = scored.total
    assert t.caption_rate >= 0.95, detector(
        f"{t.captions_right}/{t.captioned} captions exactly right (>= 0.95)",
        [p for p in scored.problems if " caption " in p],
    )


def test_figure_boxes_are_tight(scored: Score) -> None:
    t = scored.total
    assert t.ious and t.median_iou >= 0.8, detector(f"median IoU {t.median_iou:.2f} of {len(t.ious)} matched (>= 0.8)")


def test_tables_are_found(scored: Score) -> None:
    t = scored.total
    assert t.table_recall >= 0.95, detector(
        f"{t.tables_matched}/{t.tables} tables found (>= 0.95)", [p for p in scored.problems if "table" in p]
    )


def test_figure_text_holds_the_words_printed_inside(scored: Score) -> None:
    """A chart is found by its title and axis labels, not only by its caption."""
    t = scored.total
    assert t.words and t.words_found / t.words >= 0.9, detector(
        f"{t.words_found}/{t.words} titles and axis labels in the matched figures' text (>= 0.9)"
    )


def test_text_only_pages_yield_no_figure(corpus: Corpus, results: dict[str, list[Any]]) -> None:
    found = []
    for path, page in pdf_pages(corpus):
        if page.text_only:
            extra = on_page(results[path.name], page.number, "image") + on_page(
                results[path.name], page.number, "table"
            )
            found += [f"{path.name} p{page.number}: {i.kind} {i.locator} at {i.bbox}" for i in extra]
    assert any(p.text_only for _, p in pdf_pages(corpus))
    assert not found, detector("figures or tables on text-only pages", found)


def test_rotated_page_figures_are_boxed_as_displayed(corpus: Corpus, results: dict[str, list[Any]]) -> None:
    path, page = next((path, page) for path, page in pdf_pages(corpus) if page.rotation)
    predicted = [i.bbox for i in on_page(results[path.name], page.number, "image") if i.bbox]
    wrong = [
        f"{f.label} truth {f.bbox}, best IoU {max((iou(f.bbox, b) for b in predicted), default=0):.2f}"
        for f in page.figures
        if f.bbox and max((iou(f.bbox, b) for b in predicted), default=0) < 0.75
    ]
    assert not wrong, detector(f"figure boxes on the /Rotate 90 page (p{page.number}) of {path.name}", wrong)


def test_every_figure_has_its_page_box_label_and_caption(corpus: Corpus, results: dict[str, list[Any]]) -> None:
    wrong = []
    for path, page in pdf_pages(corpus):
        items = on_page(results[path.name], page.number, "image")
        for figure in page.figures:
            assert figure.bbox is not None
            where = f"{path.name} p{page.number} {figure.label or 'unlabelled'} {figure.chart}"
            best = best_match(figure.bbox, items)
            if best is None:
                wrong.append(f"{where}: not found at {figure.bbox}")
                continue
            if not re.fullmatch(rf"page:{page.number}:figure:\d+", best.locator) or best.image is None:
                wrong.append(f"{where}: locator {best.locator!r}, image {best.image is not None}")
            if best.label != figure.label:
                wrong.append(f"{where}: label {best.label!r}")
            if figure.caption and normalize(best.caption) != figure.caption:
                wrong.append(f"{where}: caption {normalize(best.caption)!r}")
            if figure.caption and figure.caption not in normalize(best.text):
                wrong.append(f"{where}: its text lacks its caption")
    assert not wrong, detector("figures not as recorded (page, box, label, caption)", wrong)


def test_tables_are_table_items_with_caption_and_markdown(corpus: Corpus, results: dict[str, list[Any]]) -> None:
    wrong = []
    for path, page in pdf_pages(corpus):
        items = on_page(results[path.name], page.number, "table")
        for table in page.tables:
            assert table.bbox is not None and table.caption is not None
            where = f"{path.name} p{page.number} {table.label}"
            best = best_match(table.bbox, items)
            if best is None:
                wrong.append(f"{where}: no table item at {table.bbox}")
                continue
            if not re.fullmatch(rf"page:{page.number}:table:\d+", best.locator):
                wrong.append(f"{where}: locator {best.locator!r}")
            if best.label != table.label or normalize(best.caption) != table.caption:
                wrong.append(f"{where}: label {best.label!r}, caption {normalize(best.caption)!r}")
            missing = [cell for cell in table.header if cell not in best.text]
            if missing or not MARKDOWN_RULE.search(best.text) or table.caption not in normalize(best.text):
                wrong.append(f"{where}: text is not caption + Markdown with header {table.header}: {best.text[:120]!r}")
    assert any(p.tables for _, p in pdf_pages(corpus))
    assert not wrong, detector("tables not as recorded", wrong)


def test_html_inline_svg_figures_come_with_their_figcaption(corpus: Corpus, results: dict[str, list[Any]]) -> None:
    html = next(f for f in corpus.files if f.name.endswith(".html"))
    items = [i for i in results[html.name] if i.kind == "image"]
    wrong = []
    for figure in html.pages[0].figures:
        assert figure.caption is not None
        found = [i for i in items if normalize(i.caption) == figure.caption or figure.caption in normalize(i.text)]
        if not found or found[0].image is None:
            wrong.append(f"{figure.label}: no image item with caption {figure.caption!r}")
    assert not wrong, detector(f"inline <svg> figures of {html.name}", wrong)


def test_figures_off_gives_pages_and_text_only(corpus: Corpus) -> None:
    """ExtractOptions(figures=False) (MMRAG_PDF_FIGURES=false): a PDF gives its pages and text chunks only."""
    for path in corpus.paths:
        if path.suffix == ".pdf":
            result = extract_file(path, file_digest([path]), ExtractOptions(figures=False))
            assert result.error is None
            assert {i.kind for i in result.items} == {"page", "text"}, path.name
