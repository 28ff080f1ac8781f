"""Uploads: checked by content, safely named, saved without replacing anything, indexed one by one."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from mmrag.commands.sample_corpus import write_sample_corpus
from mmrag.core.errors import MmragError
from mmrag.core.settings import Settings
from mmrag.indexer.service import collection_stats
from mmrag.indexer.uploads import BadUploadError, Upload, check_upload, safe_name, save_upload, uploads_dir
from mmrag.ui.uploads import index_uploads


def image_bytes(fmt: str = "PNG", colour: tuple[int, int, int] = (30, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format=fmt)
    return buffer.getvalue()


PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chart.png", "chart.png"),
        ("../../etc/cron.d/job.txt", "job.txt"),
        ("..\\..\\Windows\\evil.PNG", "evil.png"),
        (".bashrc.md", "bashrc.md"),
        ("Umsätze 2024 (final).pdf", "Umsätze_2024_final.pdf"),
        ("a\x00b;rm -rf *.txt", "a_b_rm_-rf.txt"),
        ("...", "upload"),
        ("/", "upload"),
        ("x" * 300 + ".md", "x" * 100 + ".md"),
    ],
)
def test_names_are_sanitised(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (Upload("data.xyz", b"1,2,3"), "unsupported file type .xyz"),
        (Upload("README", b"hello"), "unsupported file type (no extension)"),
        (Upload("big.png", b"\x89PNG" + b"\0" * 2048), "too large (0.0 MB; at most 0.0 MB)"),
        (Upload("empty.txt", b""), "empty file"),
        (Upload("chart.png", PDF), "named .png but its content is a PDF, not an image"),
        (Upload("report.pdf", image_bytes()), "named .pdf but its content is an image, not a PDF"),
        (Upload("notes.md", image_bytes("JPEG")), "named .md but its content is an image, not text"),
        (Upload("notes.txt", b"\x00\x01\x02binary"), "named .txt but its content is binary data, not text"),
        (Upload("latin.txt", "Café crème".encode("latin-1")), "content is text that is not UTF-8, not text"),
        (Upload("song.png", b"ID3\x03\x00\x00\x00" + b"\0" * 64), "content is audio/mpeg data, not an image"),
    ],
)
def test_bad_uploads_are_refused_with_a_reason(upload: Upload, reason: str) -> None:
    max_bytes = 1024 if upload.name == "big.png" else 1024 * 1024
    with pytest.raises(MmragError) as refused:  # an MmragError: the CLI, UI and REST API show it as one line
        check_upload(upload, max_bytes)
    assert isinstance(refused.value, BadUploadError) and reason in str(refused.value)


@pytest.mark.parametrize(
    "upload",
    [
        Upload("chart.png", image_bytes()),
        Upload("photo.png", image_bytes("JPEG")),  # another image format: PIL reads it by content
        Upload("scan.TIFF", image_bytes("TIFF")),
        Upload("report.pdf", PDF),
        Upload("notes.md", "# Notes\n\nRevenue grew – 26 %.".encode()),
        Upload("page.html", b"<html><body><p>Hello</p></body></html>"),
    ],
)
def test_good_uploads_pass(upload: Upload) -> None:
    check_upload(upload, 1024 * 1024)


def test_saving_never_replaces_another_file(tmp_path: Path) -> None:
    first = save_upload(Upload("../chart.png", image_bytes()), tmp_path)
    again = save_upload(Upload("chart.png", image_bytes()), tmp_path)
    other = save_upload(Upload("chart.png", image_bytes(colour=(1, 2, 3))), tmp_path)
    assert first == again == tmp_path / "chart.png"
    assert other == tmp_path / "chart-1.png"
    assert first.read_bytes() == image_bytes() and other.read_bytes() == image_bytes(colour=(1, 2, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chart-1.png", "chart.png"]


@pytest.mark.slow
def test_bad_files_cost_nothing_already_indexed(settings: Settings, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    write_sample_corpus(corpus)
    pdf = (corpus / "report.pdf").read_bytes()
    first = index_uploads(settings, [Upload("report.pdf", pdf)])
    assert first.indexed == ["report.pdf"] and first.failures == [] and first.written > 0
    before = collection_stats(settings).objects

    png = (corpus / "charts" / "headcount.png").read_bytes()
    done: list[tuple[int, int]] = []
    report = index_uploads(
        settings,
        [
            Upload("headcount.png", png),
            Upload("truncated.png", png[: len(png) // 2]),  # looks like a PNG; the indexer finds it broken
            Upload("fake.pdf", b"plain text"),
            Upload("report.pdf", pdf),  # the same again
        ],
        progress=lambda n, total: done.append((n, total)),
    )
    assert report.indexed == ["headcount.png", "report.pdf"] and report.unchanged == 1
    reasons = dict(report.failures)
    assert set(reasons) == {"truncated.png", "fake.pdf"}
    assert "truncated" in reasons["truncated.png"] and "not a PDF" in reasons["fake.pdf"]
    assert done[-1] == (2, 2)
    assert collection_stats(settings).objects == before + report.written
    folder = uploads_dir(settings.data_dir, settings.collection)
    assert sorted(p.name for p in folder.iterdir()) == ["headcount.png", "report.pdf", "truncated.png"]


def test_a_long_non_ascii_name_is_cut_to_fit_the_file_system(tmp_path: Path) -> None:
    name = "图表" * 150 + ".md"  # 900 bytes of UTF-8: more than a file name may hold
    saved = save_upload(Upload(name, b"# notes"), tmp_path)
    assert saved.parent == tmp_path and saved.name.startswith("图表图表") and saved.suffix == ".md"
    assert len(saved.name.encode()) <= 255 and saved.read_bytes() == b"# notes"
    other = save_upload(Upload(name, b"# other notes"), tmp_path)  # its -1 variant fits too
    assert other.name.endswith("-1.md") and len(other.name.encode()) <= 255


@pytest.mark.parametrize(
    ("name", "expected"),
    [("chart.png/", "chart.png"), ("uploads/chart.png/.", "chart.png"), ("chart.ｐｎｇ", "chart.png")],
)
def test_the_suffix_checked_is_the_suffix_saved(name: str, expected: str, tmp_path: Path) -> None:
    upload = Upload(name, image_bytes())
    check_upload(upload, 1024 * 1024)
    assert save_upload(upload, tmp_path) == tmp_path / expected


def test_an_svg_chart_upload_is_accepted_and_a_fake_one_refused() -> None:
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
    check_upload(Upload("chart.svg", svg), 1 << 20)
    with pytest.raises(BadUploadError, match="an SVG drawing"):
        check_upload(Upload("chart.svg", b"just some words"), 1 << 20)


def test_office_uploads_are_accepted_and_a_disguised_one_refused() -> None:
    import docx
    import openpyxl
    import pptx

    documents = (("a.docx", docx.Document()), ("b.pptx", pptx.Presentation()), ("c.xlsx", openpyxl.Workbook()))
    for name, document in documents:
        data = io.BytesIO()
        document.save(data)
        check_upload(Upload(name, data.getvalue()), 1 << 20)
    with pytest.raises(BadUploadError, match=r"named \.docx but its content is text, not an Office file"):
        check_upload(Upload("notes.docx", b"just some words"), 1 << 20)
