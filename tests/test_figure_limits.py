"""Figure detection on odd and hostile PDFs stays bounded: each file is indexed within its limits, or reported with
its reason; none stops the run. And the furniture of a page (rules, frames, backgrounds) is not a figure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from mmrag.indexer.extract import ExtractOptions, extract_file
from mmrag.indexer.items import Item
from tests.badfiles import PdfBuilder, chart_image, simple_pdf, text_ops


def _extract(path: Path, data: bytes, **options: object) -> tuple[list[Item], list[str], str | None, float]:
    path.write_bytes(data)
    started = time.monotonic()
    result = extract_file(path, "sha", ExtractOptions(**options))  # type: ignore[arg-type]
    return result.items, result.warnings, result.error, time.monotonic() - started


def _figures(items: list[Item]) -> list[Item]:
    return [item for item in items if item.kind == "image"]


def _bars(x: int, y: int, n: int = 6) -> bytes:
    """A vector bar chart: axes, n bars and tick marks, about 180x120 pt, its lower-left corner at (x, y)."""
    ops = [f"0.5 w {x} {y} m {x + 180} {y} l S {x} {y} m {x} {y + 120} l S"]
    for i in range(n):
        ops.append(f"0.2 0.4 0.8 rg {x + 10 + i * 28} {y} 18 {20 + i * 15} re f")
        ops.append(f"{x + 19 + i * 28} {y} m {x + 19 + i * 28} {y - 4} l S")
    return "\n".join(ops).encode() + b"\n"


def test_a_vector_chart_is_a_figure_with_its_caption_and_box(tmp_path: Path) -> None:
    content = _bars(100, 500) + text_ops(["Figure 7: Headcount by team"], 100, 470)
    content += text_ops(["As shown in Figure 7, the support team grew fastest this year."], 72, 300)
    items, _, error, _ = _extract(tmp_path / "chart.pdf", simple_pdf([content]))
    assert error is None
    [figure] = _figures(items)
    assert (figure.label, figure.caption, figure.page) == ("Figure 7", "Figure 7: Headcount by team", 1)
    x0, top, x1, bottom = figure.bbox or (0, 0, 0, 0)
    assert abs(x0 - 100) < 3 and abs(x1 - 280) < 3 and abs(top - (792 - 620)) < 3 and abs(bottom - (792 - 496)) < 3
    assert "support team grew fastest" in figure.text  # the sentence that refers to it
    assert figure.image is not None and figure.image.width >= 2 * 180 * 1024 / 792 * 0.95  # 2x the page's scale


def test_furniture_and_text_only_pages_yield_no_figure(tmp_path: Path) -> None:
    rules = b"0.5 w 72 760 m 540 760 l S 72 40 m 540 40 l S 72 598 m 200 598 l S\n"  # header, footer, underline
    grid = b"".join(f"0.5 w 72 {300 + i * 20} m 400 {300 + i * 20} l S\n".encode() for i in range(6))
    grid += b"".join(f"0.5 w {72 + i * 82} 300 m {72 + i * 82} 400 l S\n".encode() for i in range(5))
    frame = b"0.9 0.9 0.9 rg 0 0 612 792 re f 0 g 0 G 1 w 60 100 480 140 re S\n"  # page background, a text box
    text = text_ops(["A report page of text only.", "Underlined heading", "Second line of body text."], 72, 700)
    items, _, error, _ = _extract(tmp_path / "plain.pdf", simple_pdf([rules + grid + frame + text]))
    assert error is None and _figures(items) == []
    items, _, _, _ = _extract(tmp_path / "text.pdf", simple_pdf([text_ops(["Only words here."] * 30)]))
    assert _figures(items) == []


def test_an_embedded_photo_is_one_figure_not_two(tmp_path: Path) -> None:
    """A raster image with a vector frame and label on it is one figure (never indexed twice)."""
    content = b"q 240 0 0 180 72 400 cm /Im1 Do Q\n0 0 1 RG 2 w 72 400 240 180 re S\n"
    content += text_ops(["Fig. 3 Photo of the plant"], 72, 380)
    items, _, error, _ = _extract(tmp_path / "photo.pdf", simple_pdf([content], images={"Im1": chart_image(400, 300)}))
    assert error is None
    [figure] = _figures(items)
    assert figure.label == "Fig. 3" and figure.caption == "Fig. 3 Photo of the plant"


def test_a_rotated_page_gives_boxes_as_displayed(tmp_path: Path) -> None:
    content = _bars(100, 300) + text_ops(["Figure 1: Sideways"], 100, 270)
    items, _, _, _ = _extract(tmp_path / "rotated.pdf", simple_pdf([content], page_extra=" /Rotate 90"))
    [figure] = _figures(items)
    # /Rotate 90 turns the page clockwise: user (x, y) is displayed at (y, x) from the top-left
    x0, top, x1, bottom = figure.bbox or (0, 0, 0, 0)
    assert abs(x0 - 296) < 4 and abs(x1 - 420) < 4 and abs(top - 100) < 4 and abs(bottom - 280) < 4
    assert figure.image is not None and figure.image.height > figure.image.width  # the crop is upright too


@pytest.mark.parametrize(
    ("name", "content", "images", "media_box"),
    [
        (
            "paths",
            b"".join(f"{i % 500} {i // 500} m {i % 500 + 1} {i // 500} l S\n".encode() for i in range(100_000)),
            None,
            "0 0 612 792",
        ),
        (
            "tiny_images",
            b"".join(f"q 1 0 0 1 {i % 100 * 6} {i // 100 * 6} cm /Im1 Do Q\n".encode() for i in range(10_000)),
            {"Im1": Image.new("RGB", (1, 1), "red")},
            "0 0 612 792",
        ),
        (
            "zero_area",
            b"100 100 0 0 re f 200 200 m 200 200 l S q 0 0 0 0 72 400 cm /Im1 Do Q\n",
            {"Im1": chart_image(200, 200)},
            "0 0 612 792",
        ),
        ("huge_mediabox", _bars(1000, 1000), None, "0 0 14400 14400"),
        ("inverted_mediabox", _bars(100, 100), None, "612 792 0 0"),
    ],
)
def test_hostile_pages_stay_bounded(
    tmp_path: Path, name: str, content: bytes, images: dict[str, Image.Image] | None, media_box: str
) -> None:
    data = simple_pdf([content + text_ops(["Figure 1: something"], 72, 60)], images=images, media_box=media_box)
    items, warnings, error, seconds = _extract(tmp_path / f"{name}.pdf", data, timeout_s=60.0)
    assert error is None, error
    assert seconds < 30
    for figure in _figures(items):
        assert figure.image is not None and max(figure.image.size) <= 2048
        x0, top, x1, bottom = figure.bbox or (0, 0, 0, 0)
        assert x1 > x0 and bottom > top
    if name == "paths":
        assert any("objects" in w for w in warnings)


def test_a_broken_form_xobject_costs_nothing_else(tmp_path: Path) -> None:
    """A /Do of a form that is not a stream, one of a missing name, and one of a form drawing itself."""
    pdf = PdfBuilder()
    catalog, tree = pdf.add(""), pdf.add("")
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    broken = pdf.add("<< /Type /XObject /Subtype /Form /BBox [0 0 100 100] >>")
    looping = pdf.add("")
    pdf.set(looping, b"")
    loop_body = b"/Loop Do"
    pdf.set(
        looping,
        f"<< /Type /XObject /Subtype /Form /BBox [0 0 100 100] /Resources << /XObject << /Loop {looping} 0 R >> >>"
        f" /Length {len(loop_body)} >>\nstream\n".encode()
        + loop_body
        + b"\nendstream",
    )
    content = b"/Broken Do /Missing Do q 1 0 0 1 300 300 cm /Loop Do Q\n" + _bars(100, 500)
    content += text_ops(["Figure 2: Survives its neighbours"], 100, 470)
    body = pdf.stream(content)
    resources = f"<< /Font << /F1 {font} 0 R >> /XObject << /Broken {broken} 0 R /Loop {looping} 0 R >> >>"
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Resources {resources} /Contents {body} 0 R >>"
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    items, _, error, seconds = _extract(tmp_path / "forms.pdf", pdf.build(catalog), timeout_s=60.0)
    assert error is None and seconds < 30
    assert any(f.label == "Figure 2" for f in _figures(items))


def test_figure_detection_can_be_turned_off(tmp_path: Path) -> None:
    content = _bars(100, 500) + text_ops(["Figure 7: Headcount by team"], 100, 470)
    items, _, _, _ = _extract(tmp_path / "chart.pdf", simple_pdf([content]), figures=False)
    assert _figures(items) == [] and {i.kind for i in items} == {"page", "text"}


def test_charts_inside_a_page_wide_form_are_found_one_by_one(tmp_path: Path) -> None:
    """Some exporters (and LaTeX's pdfpages) wrap a whole page in one form XObject: its parts are the figures."""
    pdf = PdfBuilder()
    catalog, tree = pdf.add(""), pdf.add("")
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    inner = _bars(100, 500) + _bars(100, 150) + text_ops(["Figure 1: Top chart"], 100, 470)
    inner += text_ops(["Figure 2: Bottom chart"], 100, 120)
    form = pdf.stream(
        inner,
        f" /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 {font} 0 R >> >>",
    )
    body = pdf.stream(b"q 1 0 0 1 10 20 cm /Page Do Q\n")
    resources = f"<< /XObject << /Page {form} 0 R >> >>"
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Resources {resources} /Contents {body} 0 R >>"
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    items, _, error, _ = _extract(tmp_path / "wrapped.pdf", pdf.build(catalog))
    assert error is None
    figures = {f.label: f.bbox for f in _figures(items)}
    assert set(figures) == {"Figure 1", "Figure 2"}
    x0, top, _, _ = figures["Figure 1"] or (0, 0, 0, 0)
    assert abs(x0 - 110) < 3 and abs(top - (792 - 640)) < 3  # placed by the form's matrix (moved by 10, 20)
