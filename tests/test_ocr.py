"""Scanned pages: pages without a text layer are OCRed with Tesseract (text objects marked 'ocr'); without it the
file's note lists them; images of documents are OCRed when MMRAG_OCR_IMAGES says so."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from mmrag.core.settings import Settings
from mmrag.indexer.extract import ExtractOptions, extract_file
from mmrag.indexer.items import FileResult
from mmrag.indexer.ocr import OcrError, ocr_image
from tests.helpers import CACHE_DIR, cli_env, run_cli
from tests.scan_corpus import HELD_OUT_SEEDS, ScanCorpus, make_scan_corpus, word_accuracy

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None and not os.environ.get("CI"), reason="Tesseract is not installed"
)
ONE_CHUNK = ExtractOptions(chunk_size=100_000, chunk_overlap=0)
"""A page's OCR text in one chunk, so that its accuracy is measured on the whole page."""


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> ScanCorpus:
    return make_scan_corpus(tmp_path_factory.mktemp("clean"), HELD_OUT_SEEDS[0], pages=2, noisy=False)


@pytest.fixture(scope="module")
def noisy(tmp_path_factory: pytest.TempPathFactory) -> ScanCorpus:
    return make_scan_corpus(tmp_path_factory.mktemp("noisy"), HELD_OUT_SEEDS[1], pages=2, noisy=True)


def _page_accuracy(corpus: ScanCorpus, result: FileResult) -> list[float]:
    assert result.error is None and not result.notes
    scores = []
    for number, truth in enumerate(corpus.pages, 1):
        texts = [item for item in result.items if item.kind == "text" and item.page == number]
        assert texts and all(item.origin == "ocr" for item in texts)
        page = [item for item in result.items if item.kind == "page" and item.page == number]
        assert len(page) == 1 and page[0].image is not None and page[0].text
        scores.append(word_accuracy(truth, " ".join(item.text for item in texts)))
    return scores


@needs_tesseract
def test_clean_scans_are_read_word_for_word(clean: ScanCorpus) -> None:
    scores = _page_accuracy(clean, extract_file(clean.pdf, "x", ONE_CHUNK))
    assert min(scores) >= 0.95, scores


@needs_tesseract
def test_noisy_scans_are_read_well_enough(noisy: ScanCorpus) -> None:
    scores = _page_accuracy(noisy, extract_file(noisy.pdf, "x", ONE_CHUNK))
    assert min(scores) >= 0.85, scores


@needs_tesseract
def test_ocr_text_is_chunked_with_page_locators(clean: ScanCorpus) -> None:
    result = extract_file(clean.pdf, "x", ExtractOptions(chunk_size=300, chunk_overlap=0))
    chunks = [item for item in result.items if item.kind == "text"]
    assert {item.locator for item in chunks} >= {"page:1:chunk:0", "page:1:chunk:1", "page:2:chunk:0"}
    assert all(item.origin == "ocr" and len(item.text) <= 300 for item in chunks)


def test_without_tesseract_the_note_lists_the_pages(clean: ScanCorpus) -> None:
    result = extract_file(clean.pdf, "x", ExtractOptions(tesseract="no-such-tesseract"))
    assert result.error is None and not result.warnings
    assert not any(item.origin == "ocr" or item.kind == "text" for item in result.items)
    assert [item.locator for item in result.items if item.kind == "page"] == ["page:1", "page:2"]
    assert result.notes == ["no text layer on pages 1-2 (install Tesseract to OCR them: see README)"]


def test_ocr_off_says_so(clean: ScanCorpus) -> None:
    result = extract_file(clean.pdf, "x", ExtractOptions(ocr=False))
    assert result.notes == ["no text layer on pages 1-2 (OCR is off: MMRAG_OCR)"]


@needs_tesseract
def test_text_and_blank_pages_are_not_ocred(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    path = tmp_path / "mixed.pdf"
    with PdfPages(path) as pdf:
        text_page = Figure(figsize=(8.27, 11.69))
        text_page.text(0.1, 0.9, "A page with a real text layer about quarterly revenue.")
        pdf.savefig(text_page)
        pdf.savefig(Figure(figsize=(8.27, 11.69)))  # blank
    result = extract_file(path, "x", ExtractOptions())
    assert result.error is None and not result.notes
    assert not any(item.origin == "ocr" for item in result.items)
    assert any("quarterly revenue" in item.text for item in result.items if item.kind == "text")


@needs_tesseract
def test_ocr_images_reads_a_scanned_png(clean: ScanCorpus) -> None:
    png = clean.pngs[0]
    result = extract_file(png, "x", ExtractOptions(ocr_images=True, chunk_size=100_000, chunk_overlap=0))
    texts = [item for item in result.items if item.kind == "text"]
    assert [item.locator for item in texts] == ["ocr:chunk:0"] and texts[0].origin == "ocr"
    assert word_accuracy(clean.pages[0], texts[0].text) >= 0.95
    image = next(item for item in result.items if item.kind == "image")
    assert clean.pages[0].split()[1] in image.text and len(image.text) <= 1000

    off = extract_file(png, "x", ExtractOptions())
    assert [item.kind for item in off.items] == ["image"] and off.items[0].text == "" and not off.notes


def test_ocr_images_without_tesseract_is_a_note(tmp_path: Path) -> None:
    png = tmp_path / "page.png"
    Image.new("RGB", (200, 100), "white").save(png)
    result = extract_file(png, "x", ExtractOptions(ocr_images=True, tesseract="no-such-tesseract"))
    assert result.error is None and [item.kind for item in result.items] == ["image"]
    assert result.notes == ["image not OCRed (install Tesseract to OCR images: see README)"]


@needs_tesseract
def test_a_language_not_installed_is_one_clear_line(clean: ScanCorpus) -> None:
    result = extract_file(clean.pdf, "x", ExtractOptions(ocr_language="xyz"))
    assert result.error is not None and "\n" not in result.error
    assert "OCR language xyz is not installed" in result.error and "tesseract --list-langs" in result.error


def _fake_tesseract(tmp_path: Path, run: str) -> Path:
    """A stand-in for Tesseract that answers --version and --list-langs like the real one and does `run` when asked
    to read an image."""
    script = tmp_path / "tesseract"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in\n'
        '  --version) echo "tesseract 5.3.0"; exit 0;;\n'
        '  --list-langs) printf "List of available languages (2):\\neng\\nosd\\n"; exit 0;;\n'
        "esac\n"
        f"{run}\n"
    )
    script.chmod(0o755)
    return script


def test_a_failing_tesseract_is_a_warning_with_its_message(tmp_path: Path) -> None:
    tesseract = _fake_tesseract(tmp_path, 'echo "Error in pixReadStream: Unknown format" >&2\nexit 1')
    png = tmp_path / "page.png"
    Image.new("RGB", (200, 100), "white").save(png)
    result = extract_file(png, "x", ExtractOptions(ocr_images=True, tesseract=str(tesseract)))
    assert result.error is None and [item.kind for item in result.items] == ["image"]
    assert result.warnings == ["not OCRed: Tesseract failed (exit 1): Error in pixReadStream: Unknown format"]


def test_a_tesseract_past_its_time_is_a_timeout(tmp_path: Path) -> None:
    tesseract = _fake_tesseract(tmp_path, "exec sleep 30")
    with pytest.raises(OcrError, match=r"^OCR took longer than 1 s$"):
        ocr_image(Image.new("L", (200, 100), 255), str(tesseract), "eng", 1)


def test_a_language_not_installed_is_refused_up_front_when_only_images_are_ocred(tmp_path: Path) -> None:
    """MMRAG_OCR off but MMRAG_OCR_IMAGES on: a language Tesseract lacks is one line and exit 1 before any file is
    read (Weaviate is never reached: the URL given here is a closed port), not a long failure per image."""
    tesseract = _fake_tesseract(tmp_path, "exit 1")
    png = tmp_path / "page.png"
    Image.new("RGB", (200, 100), "white").save(png)
    settings = Settings(profile="tiny", data_dir=tmp_path / "data", cache_dir=CACHE_DIR, device="cpu")
    env = cli_env(
        settings,
        MMRAG_OCR="false",
        MMRAG_OCR_IMAGES="true",
        MMRAG_OCR_LANGUAGE="xyz",
        MMRAG_TESSERACT=str(tesseract),
        MMRAG_WEAVIATE_URL="http://127.0.0.1:9",
    )
    result = run_cli(env, "index", str(png), timeout=120)
    assert result.returncode == 1 and result.stderr.strip().count("\n") == 0, result.stderr
    assert "OCR language xyz is not installed for Tesseract (installed: eng;" in result.stderr
