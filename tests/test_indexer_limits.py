"""Inputs that used to stop a whole run or leave the indexed folders: each is now one file's reason or warning."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from mmrag.core.client import connect
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import ImageEncoder, TextEncoder, embedders_for
from mmrag.indexer.extract import ExtractOptions
from mmrag.indexer.pipeline import PART_PAGES, Indexer, IndexReport
from mmrag.indexer.store import Store
from tests.badfiles import make_deep, remove_tree
from tests.helpers import CACHE_DIR, cli_env, run_cli


@pytest.fixture(scope="module")
def embedders() -> tuple[ImageEncoder, TextEncoder]:
    return embedders_for(Settings(profile="tiny", cache_dir=CACHE_DIR, device="cpu"))


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with connect(settings) as client:
        yield Store(client, settings.collection)


def run(store: Store, embedders: tuple[ImageEncoder, TextEncoder], paths: list[Path], **options: object) -> IndexReport:
    indexer = Indexer(store, *embedders, options=ExtractOptions(**options), workers=0)
    return indexer.run(paths)


def chart(path: Path, size: tuple[int, int] = (64, 48), colour: str = "navy") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def objects(store: Store) -> list[dict[str, object]]:
    return [dict(obj.properties) for obj in store.objects()]


def looping_pdf(path: Path, good_first_page: bool) -> Path:
    """A PDF whose page tree contains itself (PDFium: "Failed to load page"), after one good page if asked."""
    kids = "[3 0 R 2 0 R]" if good_first_page else "[2 0 R]"
    count = 2 if good_first_page else 1
    body = [
        "1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj",
        f"2 0 obj << /Type /Pages /Kids {kids} /Count {count} >> endobj",
        "3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >> endobj",
        "4 0 obj << /Length 58 >> stream\nBT /F1 18 Tf 20 100 Td (Quarterly revenue grew) Tj ET\nendstream endobj",
        "5 0 obj << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> endobj",
    ]
    path.write_bytes(("%PDF-1.4\n" + "\n".join(body) + "\ntrailer << /Root 1 0 R >>\n%%EOF\n").encode())
    return path


@pytest.mark.slow
def test_a_pdf_page_tree_that_loops_costs_its_pages_not_the_run(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    half = looping_pdf(tmp_path / "half.pdf", good_first_page=True)
    loop = looping_pdf(tmp_path / "loop.pdf", good_first_page=False)
    good = chart(tmp_path / "good.png")
    report = run(store, embedders, [tmp_path])
    failures, warnings = dict(report.failures), dict(report.warnings)
    assert "no page could be read" in failures[str(loop)]
    assert "page 2 left out" in warnings[str(half)] and str(half) not in failures
    assert report.indexed == 2  # half.pdf's good page, and the chart
    sources = {o["source"] for o in objects(store)}
    assert sources == {"half.pdf", good.name}


def test_a_file_name_that_is_not_utf8_is_indexed_under_a_stable_displayable_name(
    store, embedders, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    name = os.fsdecode(b"caf\xe9 chart.png")
    chart(tmp_path / name)
    (tmp_path / os.fsdecode(b"notes \xff.txt")).write_text("Revenue by region for the third quarter.")
    first = run(store, embedders, [tmp_path])
    assert first.indexed == 2 and not first.failures
    stored = sorted(objects(store), key=lambda o: str(o["source"]))
    assert [o["source"] for o in stored] == ["caf\\xe9 chart.png", "notes \\xff.txt"]
    assert stored[0]["image_path"] == str(tmp_path) + "/caf\\xe9 chart.png"
    ids = sorted(str(o.id) for o in store.objects())
    again = run(store, embedders, [tmp_path])
    assert (again.unchanged, again.written) == (2, 0)
    assert sorted(str(o.id) for o in store.objects()) == ids


def test_nested_json_sidecars_are_that_chart_s_reason(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    chart(tmp_path / "deep.png")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    chart(tmp_path / "nested.png", colour="red")
    (tmp_path / "nested.json").write_text('{"a": ' * 70 + "1" + "}" * 70)
    chart(tmp_path / "fine.png", colour="green")
    (tmp_path / "fine.json").write_text('{"title": "Headcount", "data": {"Sales": 17}}')
    report = run(store, embedders, [tmp_path])
    failures = dict(report.failures)
    assert "nested too deeply" in failures[str(tmp_path / "deep.png")]
    assert "nested deeper than 64" in failures[str(tmp_path / "nested.png")]
    assert report.indexed == 1 and [o["text"] for o in objects(store)] == ["Headcount. Sales 17"]


def test_folders_nested_thousands_deep_are_reported_and_the_rest_indexed(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "tree"
    root.mkdir()
    (root / "top.txt").write_text("Sales rose in the spring.")
    make_deep(root, 1900)
    try:
        report = run(store, embedders, [root], max_nesting=64)
    finally:
        remove_tree(root)
    assert report.indexed == 1
    assert [reason for _, reason in report.failures] == ["folder nested deeper than 64 (MMRAG_MAX_NESTING)"]


@pytest.fixture
def linking_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A root whose documents and symlinks point at images outside it, plus one image inside it."""
    outside = tmp_path / "private"
    secret = chart(outside / "secret.png", colour="red")
    root = tmp_path / "docs"
    chart(root / "img" / "inside.png", colour="blue")
    (root / "page.html").write_text(
        "<p>Report</p>"
        f"<img src='../private/secret.png' alt='relative'><img src='{secret}' alt='absolute'>"
        f"<img src='file://{secret}' alt='url'><figure><img src='img/inside.png'><figcaption>Inside chart"
        "</figcaption></figure>"
    )
    (root / "note.md").write_text(
        "# Note\n\nSome text.\n\n<img src='../private/secret.png'>\n\n![md](../private/secret.png)\n"
    )
    (root / "link.png").symlink_to(secret)
    return root, outside


def test_links_and_symlinks_never_leave_the_indexed_folders(store, embedders, linking_tree) -> None:  # type: ignore[no-untyped-def]
    root, _ = linking_tree
    report = run(store, embedders, [root])
    stored = objects(store)
    assert not [o for o in stored if "private" in str(o.get("image_path") or "")]
    assert {o["image_path"] for o in stored if o["kind"] == "image"} == {str(root / "img" / "inside.png")}
    failures, warnings = dict(report.failures), report.warnings
    assert "outside the indexed folders" in failures[str(root / "link.png")]
    refused = [m for p, m in warnings if p == str(root / "page.html")]
    assert len(refused) == 3 and any("'file:///" in m for m in refused)
    assert len([m for p, m in warnings if p == str(root / "note.md")]) == 1  # the same target, reported once


def test_an_extra_root_allows_links_into_it(store, embedders, linking_tree) -> None:  # type: ignore[no-untyped-def]
    root, outside = linking_tree
    report = run(store, embedders, [root], roots=(outside.resolve(),))
    assert not report.failures and not report.warnings
    images = {o["image_path"] for o in objects(store) if o["kind"] == "image"}
    assert str(outside.resolve() / "secret.png") in images and str(root / "link.png") in images


def test_extreme_aspect_images_are_refused_before_clip_blows_them_up(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    Image.new("L", (1, 100_000), 255).save(tmp_path / "strip.png")
    Image.new("L", (20_000, 1), 255).save(tmp_path / "line.png")
    chart(tmp_path / "ok.png", size=(400, 20))
    started = time.monotonic()
    report = run(store, embedders, [tmp_path])
    assert time.monotonic() - started < 60
    failures = dict(report.failures)
    assert "more elongated than 1:50" in failures[str(tmp_path / "strip.png")]
    assert "more elongated than 1:50" in failures[str(tmp_path / "line.png")]
    assert report.indexed == 1


def _long_pdf(path: Path, pages: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    with PdfPages(path) as pdf:
        for page in range(1, pages + 1):
            figure = Figure(figsize=(4, 3))
            figure.text(0.1, 0.5, f"Section {page}: revenue of region {page} was {page * 7} million.")
            pdf.savefig(figure)
    return path


def test_a_long_pdf_is_written_in_parts_and_counts_as_complete(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pages = 2 * PART_PAGES + 3
    pdf = _long_pdf(tmp_path / "long.pdf", pages)
    report = run(store, embedders, [pdf])
    assert report.indexed == 1 and report.written == 2 * pages  # a page image and a text chunk per page
    stored = objects(store)
    assert max(int(o["n_items"]) for o in stored) == len(stored)  # the last part holds the total
    assert sorted(o["page"] for o in stored if o["kind"] == "page") == list(range(1, pages + 1))
    again = run(store, embedders, [pdf])
    assert (again.unchanged, again.written) == (1, 0)


def test_pages_past_the_limit_are_reported(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pdf = _long_pdf(tmp_path / "long.pdf", PART_PAGES + 4)
    report = run(store, embedders, [pdf], max_pdf_pages=5)
    assert report.warnings == [(str(pdf), f"pages 6-{PART_PAGES + 4} not indexed (MMRAG_MAX_PDF_PAGES=5)")]
    assert sorted(o["page"] for o in objects(store) if o["kind"] == "page") == [1, 2, 3, 4, 5]
    assert run(store, embedders, [pdf], max_pdf_pages=5).unchanged == 1


def test_long_text_is_cut_at_the_limit_and_slow_files_time_out(store, embedders, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    big = tmp_path / "big.txt"
    big.write_text("é" + "word " * 40_000)  # 200 KB, the limit falls inside a two-byte character
    report = run(store, embedders, [big], max_text_bytes=20_001)
    [(path, warning)] = report.warnings
    assert path == str(big) and warning == "text after the first 19.5 KB not indexed (MMRAG_MAX_TEXT_MB)"
    assert 20 <= report.written <= 30
    slow = run(store, embedders, [_long_pdf(tmp_path / "slow.pdf", 3)], timeout_s=1e-6)
    assert dict(slow.failures)[str(tmp_path / "slow.pdf")].startswith("took longer than 1e-06 s")


@pytest.mark.slow
def test_cli_reports_warnings_and_failures_and_exits_1(settings: Settings, linking_tree) -> None:  # type: ignore[no-untyped-def]
    root, _ = linking_tree
    result = run_cli(cli_env(settings), "index", str(root), "--workers", "0")
    assert result.returncode == 1, result.stderr  # a file failed (link.png); the others are indexed
    assert "Traceback" not in result.stderr
    assert "link.png: symlink to a file outside the indexed folders" in result.stderr
    assert "'file:///" in result.stderr and "not followed: it points outside the indexed folders" in result.stderr
