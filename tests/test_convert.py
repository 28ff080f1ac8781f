"""Page images of Office files through headless LibreOffice: pages with their text when it is installed, a note
when it is not, a warning (never an exception) when it cannot convert a file or hangs."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from mmrag.indexer.convert import _PROFILE, NO_LIBREOFFICE_NOTE, office_pages
from mmrag.indexer.extract import Deadline, ExtractOptions
from mmrag.indexer.items import Item

needs_libreoffice = pytest.mark.skipif(
    shutil.which("soffice") is None and not os.environ.get("CI"), reason="LibreOffice is not installed"
)


def _pages(path: Path, options: ExtractOptions, seconds: float = 120) -> tuple[list[Item], list[str], list[str]]:
    warnings: list[str] = []
    notes: list[str] = []
    return office_pages(path, options, Deadline(seconds), warnings, notes), warnings, notes


@needs_libreoffice
def test_docx_and_pptx_pages_carry_their_text(tmp_path: Path) -> None:
    import docx
    import pptx

    document = docx.Document()
    document.add_heading("Quarterly report", 1)
    document.add_paragraph("Revenue grew 12.5% in the north region.")
    document.add_page_break()
    document.add_paragraph("The second page lists the risks.")
    document.save(tmp_path / "report.docx")
    deck = pptx.Presentation()
    for title in ("Roadmap", "Hiring plan"):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = f"{title} details"
    deck.save(tmp_path / "deck.pptx")

    pages, warnings, notes = _pages(tmp_path / "report.docx", ExtractOptions(page_long_side=512))
    assert not warnings and not notes
    assert [(p.kind, p.locator, p.page) for p in pages] == [("page", "page:1", 1), ("page", "page:2", 2)]
    assert "Revenue grew 12.5% in the north region." in pages[0].text and "risks" in pages[1].text
    assert all(p.image is not None and max(p.image.size) == 512 for p in pages)

    pages, warnings, _ = _pages(tmp_path / "deck.pptx", ExtractOptions(max_pdf_pages=1))
    assert [p.locator for p in pages] == ["page:1"] and "Roadmap details" in pages[0].text
    assert warnings == ["page image 2 left out (MMRAG_MAX_PDF_PAGES=1)"]

    profile = _PROFILE.path
    assert profile is not None  # the profile LibreOffice ran with forbids macros (it kept the settings)
    settings = (profile / "user" / "registrymodifications.xcu").read_text()
    assert 'oor:name="DisableMacrosExecution"' in settings and 'oor:name="MacroSecurityLevel"' in settings


@needs_libreoffice
def test_a_file_libreoffice_cannot_convert_is_a_warning(tmp_path: Path) -> None:
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04" + bytes(300))
    pages, warnings, notes = _pages(broken, ExtractOptions())
    assert pages == [] and not notes
    assert warnings == ["page images left out: LibreOffice could not convert it"]


def test_without_libreoffice_a_note(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK")
    pages, warnings, notes = _pages(path, ExtractOptions(soffice="no-such-soffice"))
    assert pages == [] and not warnings and notes == [NO_LIBREOFFICE_NOTE]
    pages, warnings, notes = _pages(path, ExtractOptions(soffice="no-such-soffice", office_pages=False))
    assert pages == [] and not warnings and not notes


def test_a_hung_converter_is_killed_with_what_it_started(tmp_path: Path) -> None:
    """A stand-in for a LibreOffice that never finishes (a script that starts a child and waits): when the file's
    time is up both are gone and the page images are a warning."""
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "soffice"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK")
    started = time.monotonic()
    pages, warnings, _ = _pages(path, ExtractOptions(soffice=str(script)), seconds=2)
    assert pages == [] and len(warnings) == 1
    assert warnings[0].startswith("page images left out: LibreOffice took longer than")
    assert time.monotonic() - started < 30
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    """Running (a killed process not yet reaped is a zombie: dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
