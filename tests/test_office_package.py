"""The safety check of an Office zip before any parser sees it (check_package): every XML part, whatever its name,
is read as a stream; a DTD or broken XML refuses the file naming the part; a large part costs no memory."""

from __future__ import annotations

import tracemalloc
import zipfile
from pathlib import Path

import pytest

from mmrag.indexer.items import BadFileError
from mmrag.indexer.office_package import check_package
from mmrag.indexer.reading import Deadline, ExtractOptions

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
ENTITIES = (
    f'<?xml version="1.0"?><!DOCTYPE w:document [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
    f'<w:document xmlns:w="{W}"><w:body><w:p><w:r><w:t>&b;</w:t></w:r></w:p></w:body></w:document>'
).encode()


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import docx

    path = tmp_path_factory.mktemp("package") / "good.docx"
    document = docx.Document()
    document.add_paragraph("An ordinary paragraph.")
    document.save(str(path))
    return path


def _rewrite(good: Path, path: Path, replace: dict[str, bytes], rename: dict[str, str] | None = None) -> Path:
    """`good` with some parts' contents replaced (by their old name) and some parts renamed."""
    rename = rename or {}
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            archive.writestr(rename.get(name, name), replace.get(name, source.read(name)))
    return path


def _check(path: Path, seconds: float = 60) -> list[str]:
    warnings: list[str] = []
    check_package(path, ExtractOptions().max_unzipped_bytes, Deadline(seconds), warnings)
    return warnings


def test_an_ordinary_file_passes(good: Path) -> None:
    assert _check(good) == []


def test_a_dtd_is_refused_naming_the_part(good: Path, tmp_path: Path) -> None:
    path = _rewrite(good, tmp_path / "dtd.docx", {"word/styles.xml": ENTITIES})
    with pytest.raises(BadFileError, match=r"^word/styles\.xml declares a DTD \(refused: entity expansion\)$"):
        _check(path)


def test_broken_xml_is_refused_naming_the_part(good: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(good) as archive:
        styles = archive.read("word/styles.xml")
    path = _rewrite(good, tmp_path / "broken.docx", {"word/styles.xml": styles[: len(styles) // 2]})
    with pytest.raises(BadFileError, match=r"^broken XML in word/styles\.xml: "):
        _check(path)


def test_an_xml_part_under_another_name_is_checked(good: Path, tmp_path: Path) -> None:
    """The main document renamed word/document.bin, its XML content type given by an Override: still XML to
    Word and LibreOffice, so still checked; so is a part whose extension has an XML content type (a Default)."""
    with zipfile.ZipFile(good) as archive:
        types = archive.read("[Content_Types].xml").replace(b'"/word/document.xml"', b'"/word/document.bin"')
        rels = archive.read("_rels/.rels").replace(b'"word/document.xml"', b'"word/document.bin"')
    assert b"/word/document.bin" in types and b"word/document.bin" in rels
    path = _rewrite(
        good,
        tmp_path / "renamed.docx",
        {"[Content_Types].xml": types, "_rels/.rels": rels},
        rename={"word/document.xml": "word/document.bin"},
    )
    assert _check(path) == []  # renamed, still a valid package
    path = _rewrite(path, tmp_path / "renamed-dtd.docx", {"word/document.bin": ENTITIES})
    with pytest.raises(BadFileError, match=r"^word/document\.bin declares a DTD"):
        _check(path)

    default = types.replace(b"<Default ", b'<Default Extension="dat" ContentType="application/xml"/><Default ', 1)
    path = _rewrite(
        good,
        tmp_path / "default.docx",
        {"[Content_Types].xml": default},
        rename={"docProps/app.xml": "docProps/app.dat"},
    )
    assert _check(path) == []
    path = _rewrite(path, tmp_path / "default-broken.docx", {"docProps/app.dat": b"<Properties><unclosed>"})
    with pytest.raises(BadFileError, match=r"^broken XML in docProps/app\.dat: "):
        _check(path)


def test_a_binary_part_is_not_read_as_xml(good: Path, tmp_path: Path) -> None:
    path = _rewrite(good, tmp_path / "macros.docx", {})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0 not XML at all <")
    assert _check(path) == ["contains macros (never run)"]


def test_a_large_part_is_checked_in_bounded_memory(good: Path, tmp_path: Path) -> None:
    """A 30 MB part (a long table of rows) is checked without holding it, or a tree of it, in memory."""
    row = f"<w:tr><w:tc><w:p><w:r><w:t>{'cell text ' * 20}</w:t></w:r></w:p></w:tc></w:tr>"
    rows = 30 * 2**20 // len(row)
    body = f'<w:document xmlns:w="{W}"><w:body><w:tbl>{row * rows}</w:tbl></w:body></w:document>'.encode()
    path = _rewrite(good, tmp_path / "large.docx", {"word/document.xml": body})
    tracemalloc.start()
    try:
        assert _check(path) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(body) / 20, (peak, len(body))


class _CountingDeadline(Deadline):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.checks = 0

    def check(self) -> None:
        self.checks += 1
        super().check()


def test_the_deadline_is_checked_while_a_large_part_is_read(good: Path, tmp_path: Path) -> None:
    """A part that takes long to read is stopped in the middle, not after it: the deadline is checked as it goes."""
    body = f'<w:document xmlns:w="{W}"><w:body>{"<w:p/>" * 2_000_000}</w:body></w:document>'.encode()
    path = _rewrite(good, tmp_path / "slow.docx", {"word/document.xml": body})
    deadline = _CountingDeadline(60)
    check_package(path, ExtractOptions().max_unzipped_bytes, deadline, [])
    assert deadline.checks > len(body) / 2**17
