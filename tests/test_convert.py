"""Page images of Office files through headless LibreOffice: pages with their text when it is installed, a note
when it is not, a warning (never an exception) when it cannot convert a file or hangs; what a document links to
(pictures at http://... or file:///...) is never fetched."""

from __future__ import annotations

import http.server
import io
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree
from PIL import Image

from mmrag.indexer import convert
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
    assert 'oor:name="BlockUntrustedRefererLinks"' in settings


@needs_libreoffice
def test_a_file_libreoffice_cannot_convert_is_a_warning(tmp_path: Path) -> None:
    junk = tmp_path / "junk.docx"
    with zipfile.ZipFile(junk, "w") as archive:
        archive.writestr("hello.txt", "not a document")
    pages, warnings, notes = _pages(junk, ExtractOptions())
    assert pages == [] and not notes
    assert warnings == ["page images left out: LibreOffice could not convert it"]
    broken = tmp_path / "broken.docx"
    broken.write_bytes(b"PK\x03\x04" + bytes(300))
    pages, warnings, notes = _pages(broken, ExtractOptions())
    assert pages == [] and not notes
    assert warnings == ["page images left out: not an Office file (not a zip archive)"]


MAGENTA = (255, 0, 255)
"""The colour of the linked pictures: in a page image it means LibreOffice fetched one."""


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a magenta PNG and records its path in the server's `paths`."""

    def do_GET(self) -> None:
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        body = _png(MAGENTA)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    """A local web server's base URL and the paths it was asked for."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.paths = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.paths  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _linked_docx(path: Path, targets: list[str]) -> None:
    """A document with one picture per target, each linked (a:blip r:link, TargetMode External), not embedded."""
    import docx
    from docx.shared import Inches

    document = docx.Document()
    document.add_paragraph("Linked pictures follow.")
    for i, _ in enumerate(targets):
        document.add_picture(io.BytesIO(_png((0, 160, i))), width=Inches(2.5))  # distinct, or they share one part
    embedded = path.with_name("embedded.docx")
    document.save(embedded)
    with zipfile.ZipFile(embedded) as source, zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"r:embed=", b"r:link=")
            elif info.filename == "word/_rels/document.xml.rels":
                data = _linked(data, targets)
            archive.writestr(info, data)


def _linked(rels: bytes, targets: list[str]) -> bytes:
    """The pictures' relationships, in order, turned into external links to `targets`."""
    media = iter(targets)
    return re.sub(rb'Target="media/[^"]+"', lambda _: f'Target="{next(media)}" TargetMode="External"'.encode(), rels)


def _magenta_pixels(pages: list[Item]) -> int:
    total = 0
    for page in pages:
        assert page.image is not None
        image = page.image.convert("RGB")
        colours = image.getcolors(image.width * image.height) or []
        total += sum(n for n, (r, g, b) in colours if r > 200 and g < 60 and b > 200)
    return total


@pytest.fixture
def fresh_profile() -> Iterator[None]:
    """A profile made from convert.PROFILE_SETTINGS as the test leaves them, discarded afterwards."""
    _PROFILE.discard()
    yield
    _PROFILE.discard()


@needs_libreoffice
@pytest.mark.parametrize("defences", ["all", "profile only", "unlinked copy only"])
def test_linked_pictures_are_never_fetched(
    tmp_path: Path,
    recorder: tuple[str, list[str]],
    fresh_profile: None,
    monkeypatch: pytest.MonkeyPatch,
    defences: str,
) -> None:
    """A picture linked at http://... is not requested and one linked at file:///... not drawn: by each defence
    alone (the copy's external relationships pointed nowhere; the profile blocking linked content), and together
    (with no network, where the system allows it)."""
    local = tmp_path / "secret.png"
    local.write_bytes(_png(MAGENTA))
    base, requests = recorder
    path = tmp_path / "linked.docx"
    _linked_docx(path, [f"{base}/picture.png", local.as_uri()])
    if defences != "all":
        monkeypatch.setattr(convert, "_offline", lambda: ())
    if defences == "profile only":
        monkeypatch.setattr(convert, "_unlinked", lambda data, part: data)
    if defences == "unlinked copy only":
        blocking = r'<item oor:path="[^"]*(?:Content/Update|Scripting)"><prop oor:name="(?:Link|BlockUntrusted)[^\n]*\n'
        settings = re.sub(blocking, "", convert.PROFILE_SETTINGS)
        assert settings.count("<item ") == 2
        monkeypatch.setattr(convert, "PROFILE_SETTINGS", settings)
    pages, warnings, _ = _pages(path, ExtractOptions(page_long_side=512))
    assert not warnings and len(pages) == 1 and "Linked pictures follow." in pages[0].text
    assert requests == []
    assert _magenta_pixels(pages) == 0


@pytest.mark.skipif(not convert._offline(), reason="this system lets no process drop its network (unshare --net)")
def test_libreoffice_runs_without_network(tmp_path: Path) -> None:
    """Where the system allows it, LibreOffice (here a script in its place) sees no network interface but loopback."""
    import docx

    seen = tmp_path / "interfaces"
    script = tmp_path / "soffice"
    script.write_text(f"#!/bin/sh\ntail -n +3 /proc/net/dev | cut -d: -f1 > {seen}\n")
    script.chmod(0o755)
    path = tmp_path / "report.docx"
    docx.Document().save(path)
    _, warnings, _ = _pages(path, ExtractOptions(soffice=str(script)))
    assert warnings == ["page images left out: LibreOffice could not convert it"]
    assert seen.read_text().split() == ["lo"]


def test_the_copy_libreoffice_converts_links_nowhere(tmp_path: Path) -> None:
    """External relationships (TargetMode External, or a URL as target) point at about:blank in the copy; every
    other part is the same bytes."""
    path = tmp_path / "linked.docx"
    _linked_docx(path, ["http://127.0.0.1:9/picture.png", "file:///etc/passwd"])
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("word/_rels/header1.xml.rels", _RELS_WITHOUT_MODE)
    copy = tmp_path / "copy.docx"
    convert._unlinked_copy(path, copy)
    with zipfile.ZipFile(path) as before, zipfile.ZipFile(copy) as after:
        assert before.namelist() == after.namelist()
        changed = {name for name in before.namelist() if before.read(name) != after.read(name)}
        assert changed == {"word/_rels/document.xml.rels", "word/_rels/header1.xml.rels"}
        for part, links in (("word/_rels/document.xml.rels", 2), ("word/_rels/header1.xml.rels", 1)):
            old, new = (_targets(archive.read(part)) for archive in (before, after))
            outside = {key for key, (target, _) in old.items() if target.startswith(("http:", "file:"))}
            assert len(outside) == links and {key for key in old if new[key] != old[key]} == outside
            assert all(new[key] == ("about:blank", "External") for key in outside)


def _targets(rels: bytes) -> dict[str, tuple[str, str | None]]:
    return {r.get("Id"): (r.get("Target"), r.get("TargetMode")) for r in etree.fromstring(rels)}


_RELS_WITHOUT_MODE = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/image" '
    'Target="file:///etc/passwd"/></Relationships>'
)


def test_without_libreoffice_a_note(tmp_path: Path) -> None:
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK")
    pages, warnings, notes = _pages(path, ExtractOptions(soffice="no-such-soffice"))
    assert pages == [] and not warnings and notes == [NO_LIBREOFFICE_NOTE]
    pages, warnings, notes = _pages(path, ExtractOptions(soffice="no-such-soffice", office_pages=False))
    assert pages == [] and not warnings and not notes


def test_a_hung_converter_is_killed_with_what_it_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for a LibreOffice that never finishes (a script that makes a temp folder, as LibreOffice does,
    starts a child and waits): when the file's time is up both are gone, so is the temp folder, and the page
    images are a warning."""
    import docx

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    pid_file = tmp_path / "child.pid"
    script = tmp_path / "soffice"
    script.write_text(f"#!/bin/sh\nmktemp -d -t lu.XXXXXX\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    path = tmp_path / "report.docx"
    docx.Document().save(path)
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
    assert list(temp.iterdir()) == []


def _alive(pid: int) -> bool:
    """Running (a killed process not yet reaped is a zombie: dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"
