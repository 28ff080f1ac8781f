"""Office files end to end: `mmrag index` on a held-out Office corpus into a real Weaviate (tiny CLIP, real MiniLM),
then every value of every native chart found by a question that names it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mmrag.core.server import LocalWeaviate
from mmrag.core.settings import Settings
from mmrag.rag_app.chain import RagChain
from mmrag.rag_app.service import open_chain
from tests.helpers import cli_env, module_settings, run_cli
from tests.office_corpus import HELD_OUT_SEEDS, OfficeCorpus, make_office_corpus

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def indexed(
    weaviate_server: LocalWeaviate, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, OfficeCorpus, dict[str, Any]]:
    settings = module_settings(weaviate_server, "O")
    corpus = make_office_corpus(tmp_path_factory.mktemp("office"), HELD_OUT_SEEDS[-1])
    # without LibreOffice: everything but page images is indexed, and the summary says what is missing
    env = cli_env(settings, MMRAG_LIBREOFFICE="no-such-soffice")
    files = [str(corpus.folder / name) for name in (corpus.docx, corpus.pptx, corpus.xlsx)]
    result = run_cli(env, "index", *files, "--workers", "0", "--json", "--strict", timeout=600)
    assert result.returncode == 0, result.stderr
    return settings, corpus, json.loads(result.stdout)


@pytest.fixture(scope="module")
def chain(indexed: tuple[Settings, OfficeCorpus, dict[str, Any]]) -> Iterator[RagChain]:
    with open_chain(indexed[0], retrieval_only=True) as rag_chain:
        yield rag_chain


def test_the_summary_counts_charts_and_notes_the_missing_page_images(
    indexed: tuple[Settings, OfficeCorpus, dict[str, Any]],
) -> None:
    _, corpus, report = indexed
    assert report["files"] == {"seen": 3, "indexed": 3, "unchanged": 0, "failed": 0}
    assert report["found"]["charts"] == len(corpus.charts) and report["found"]["pages"] == 0
    assert report["found"]["tables"] >= len(corpus.tables)
    notes = {note["path"].rsplit("/", 1)[-1]: note["message"] for note in report["notes"]}
    assert set(notes) == {corpus.docx, corpus.pptx, corpus.xlsx}
    assert all("page images need LibreOffice" in message for message in notes.values())


def test_every_chart_value_is_found_by_a_question_naming_it(
    indexed: tuple[Settings, OfficeCorpus, dict[str, Any]], chain: RagChain
) -> None:
    _, corpus, _ = indexed
    missed, asked = [], 0
    for chart in corpus.charts:
        for series in chart.series:
            for category, value in zip(series.categories, series.values, strict=True):
                question = f"{chart.title}: what was {series.name} for {category}?"
                documents = chain.retriever.invoke(question, k=5)
                asked += 1
                found = [
                    d
                    for d in documents
                    if d.metadata["source"] == chart.file
                    and d.metadata["origin"] == "chart-data"
                    and chart.title in d.page_content
                    and _same(_cell(d.page_content, category, series.name), value)
                ]
                if not found:
                    missed.append(question)
    assert asked > 50 and not missed, f"{len(missed)} of {asked} questions missed their chart: {missed[:5]}"


def _cell(table_text: str, category: str, series: str) -> str | None:
    """The cell of a chart's Markdown data table at (category row, series column); None when there is none."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table_text.splitlines()]
    column = None
    for row in rows:
        if column is None and series in row[1:]:
            column = row.index(series, 1)
        elif column is not None and _same(row[0], category) and column < len(row):
            return row[column]
    return None


def _same(cell: str | None, truth: str) -> bool:
    """Equal as written, or as numbers (`7` and `7.0`)."""
    if cell == truth:
        return True
    try:
        return cell is not None and float(cell) == float(truth)
    except ValueError:
        return False


def test_a_slide_chart_is_cited_by_slide_and_shape(
    indexed: tuple[Settings, OfficeCorpus, dict[str, Any]], chain: RagChain
) -> None:
    from mmrag.rag_app.sources import Source

    _, corpus, _ = indexed
    chart = next(c for c in corpus.charts if c.slide is not None)
    documents = chain.retriever.invoke(f"{chart.title} {chart.series[0].name}", k=3)
    top = Source.from_document(1, documents[0])
    assert top.source == chart.file and top.page == chart.slide and top.origin == "chart-data"
    assert top.shape and top.shape.startswith("Chart") and top.figure_label is None
    assert top.label.endswith(f"{chart.file} slide {chart.slide}, {top.shape}")


def test_a_scanned_pdf_indexes_its_ocr_text(
    indexed: tuple[Settings, OfficeCorpus, dict[str, Any]], tmp_path: Path
) -> None:
    """The summary counts OCR text chunks; without Tesseract it notes the pages instead (and --strict passes)."""
    import shutil

    from tests.scan_corpus import make_scan_corpus

    settings, _, _ = indexed
    scan = make_scan_corpus(tmp_path / "scan", 4242, pages=2)
    missing = run_cli(
        cli_env(settings, MMRAG_TESSERACT="no-such-tesseract", MMRAG_COLLECTION=settings.collection + "S"),
        *("index", str(scan.pdf), "--workers", "0", "--json", "--strict"),
    )
    assert missing.returncode == 0, missing.stderr
    report = json.loads(missing.stdout)
    assert report["found"]["ocr"] == 0 and report["found"]["pages"] == 2
    assert [n["message"] for n in report["notes"]] == [
        "no text layer on pages 1-2 (install Tesseract to OCR them: see README)"
    ]
    if shutil.which("tesseract") is None and not os.environ.get("CI"):
        pytest.skip("Tesseract is not installed (CI installs it: there this test runs)")
    bad = run_cli(cli_env(settings, MMRAG_OCR_LANGUAGE="xyz"), "index", str(scan.pdf))  # refused before any file
    assert bad.returncode == 1 and "OCR language xyz is not installed" in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "Traceback" not in bad.stderr
    ocred = run_cli(cli_env(settings), "index", str(scan.pdf), "--workers", "0", "--json")
    assert ocred.returncode == 0, ocred.stderr
    report = json.loads(ocred.stdout)
    assert report["found"]["ocr"] >= 2 and not report["notes"]
