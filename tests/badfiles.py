"""A catalog of bad and hostile inputs for `mmrag index`, each with the outcome a user should see.

Every case writes itself into a folder of its own (`root/<case name>/`) under the indexed root; `outside` is a
folder next to the root that links may point at but that is never indexed. `check` compares what one `mmrag index
--json` run reported and stored for a case with the case's expectation. Used by tests/test_bad_inputs.py and
bench/reliability.py; tests/fuzz_corpus/make_seeds.py builds its seeds with the writers here.

Cases are small on disk; the few whose size is the point (50 MB of text, 3,000 pages, 100,000 paths) are built at
run time and marked `heavy`.
"""

from __future__ import annotations

import functools
import io
import json
import operator
import os
import socket
import stat
import struct
import subprocess
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from PIL import Image, ImageDraw

Outcome = Literal["indexed", "failed", "absent", "handled"]
"""indexed: stored, no failure; failed: listed in failures with a reason, nothing stored; absent: nothing stored
(a failure or warning may say why); handled: indexed or failed, either is right, but it must be one of them."""

Run = Literal["files", "tree", "own"]
"""files: one shared run over all file-content cases; tree: one shared run over file-system oddities; own: alone."""

# Reason and warning fragments (lower case); a match on any one of them is enough.
CORRUPT = ("corrupt", "not a readable image", "cannot identify", "unsupported format")
TRUNCATED = ("truncated", "corrupt")
EMPTY = ("empty",)
BOMB = ("decompression bomb", "too large", "megapixel")
ASPECT = ("aspect",)
NOT_UTF8 = ("utf-8", "utf8")
SIDECAR = ("sidecar",)
NOTHING = ("nothing to index", "no text", "no pages", "binary")
NESTING = ("nest", "too deep", "depth")
OUTSIDE = ("outside", "leave", "escape")
PAGE = ("page",)
PAGES = ("pages", "2000")
OBJECTS = ("objects",)
TEXT_LIMIT = ("mb", "left out", "truncat", "limit")
PERMISSION = ("permission",)

SECRET_TEXT = "TOP SECRET text that lives outside the indexed folder"


class CaseUnavailableError(Exception):
    """This machine cannot build the case (no mknod permission, running as root for chmod 000, ...)."""


@dataclass(frozen=True)
class Expect:
    outcome: Outcome
    reason: tuple[str, ...] = ()
    """failed (or handled and failed): the reason holds one of these fragments."""
    warning: tuple[str, ...] = ()
    """A warning about the case holds one of these; empty: no warning required."""
    told: tuple[str, ...] = ()
    """A warning or a failure about the case holds one of these (the user is told why it is left out)."""
    sources: int | None = None
    """indexed: exactly this many files of the case were indexed."""
    no_images: bool = False
    """indexed: no image object came from the case (the images it links to are outside the root)."""
    max_pages: int | None = None
    """indexed: no page object numbered above this."""


Writer = Callable[[Path, Path], None]
"""write(case_dir, outside): build the case in case_dir (which exists and is empty)."""


@dataclass(frozen=True)
class Case:
    name: str
    write: Writer
    expect: Expect
    run: Run = "files"
    heavy: bool = False
    """Big or slow (tens of MB, thousands of pages): marked slow in tests."""
    about: str = ""
    subject: str | None = None
    """The file of the case whose outcome is checked; None: all files of the case together."""


# --- small valid files -----------------------------------------------------------------------------------------


def chart_image(width: int = 96, height: int = 72, seed: int = 0) -> Image.Image:
    """A small bar chart drawn with PIL."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for bar in range(4):
        top = 8 + (seed * 7 + bar * 13) % (height - 16)
        draw.rectangle((8 + bar * 20, top, 20 + bar * 20, height - 4), fill=(60 * bar, 90, 200 - seed % 100))
    return image


def image_bytes(fmt: str, image: Image.Image | None = None, **save: Any) -> bytes:
    buffer = io.BytesIO()
    (image or chart_image()).save(buffer, format=fmt, **save)
    return buffer.getvalue()


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_chunk(kind: bytes, data: bytes, crc: int | None = None) -> bytes:
    checksum = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)


def grey_png(width: int, height: int) -> bytes:
    """A valid all-black 8-bit greyscale PNG of any size, compressed (1x100000 is 277 bytes)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\0" * (width + 1)) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows, 9))
        + png_chunk(b"IEND", b"")
    )


def bomb_png(width: int, height: int) -> bytes:
    """A tiny file that claims width x height pixels (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + png_chunk(b"IEND", b"")
    )


class PdfBuilder:
    """Hand-written PDF syntax: objects numbered from 1, a correct xref table, no library in between."""

    def __init__(self) -> None:
        self.objects: list[bytes] = []

    def add(self, body: bytes | str) -> int:
        self.objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(self.objects)

    def set(self, number: int, body: bytes | str) -> None:
        self.objects[number - 1] = body.encode("latin-1") if isinstance(body, str) else body

    def stream(self, data: bytes, entries: str = "", compress: bool = True) -> int:
        if compress:
            data, entries = zlib.compress(data), entries + " /Filter /FlateDecode"
        return self.add(f"<< /Length {len(data)}{entries} >>\nstream\n".encode() + data + b"\nendstream")

    def build(self, root: int, trailer: str = "") -> bytes:
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets = []
        for number, body in enumerate(self.objects, start=1):
            offsets.append(len(out))
            out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
        xref = len(out)
        out += f"xref\n0 {len(self.objects) + 1}\n0000000000 65535 f \n".encode()
        out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
        out += f"trailer\n<< /Size {len(self.objects) + 1} /Root {root} 0 R{trailer} >>\n".encode()
        return bytes(out + f"startxref\n{xref}\n%%EOF\n".encode())


def text_ops(lines: Sequence[str], x: int = 72, y: int = 720) -> bytes:
    escaped = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in lines]
    body = " T* ".join(f"({line}) Tj" for line in escaped)
    return f"BT /F1 12 Tf 14 TL {x} {y} Td {body} ET\n".encode("latin-1")


def simple_pdf(
    pages: Sequence[bytes],
    *,
    media_box: str = "0 0 612 792",
    images: Mapping[str, Image.Image] | None = None,
    page_extra: str = "",
) -> bytes:
    """A PDF whose pages have the given content streams, Helvetica as /F1 and `images` as XObjects."""
    pdf = PdfBuilder()
    catalog, tree = pdf.add(""), pdf.add("")
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    xobjects = []
    for name, image in (images or {}).items():
        rgb = image.convert("RGB")
        entries = f" /Type /XObject /Subtype /Image /Width {rgb.width} /Height {rgb.height}"
        entries += " /ColorSpace /DeviceRGB /BitsPerComponent 8"
        xobjects.append(f"/{name} {pdf.stream(rgb.tobytes(), entries)} 0 R")
    resources = f"<< /Font << /F1 {font} 0 R >> /XObject << {' '.join(xobjects)} >> >>"
    kids = []
    for content in pages:
        body = pdf.stream(content)
        kids.append(
            pdf.add(
                f"<< /Type /Page /Parent {tree} 0 R /MediaBox [{media_box}] /Resources {resources} "
                f"/Contents {body} 0 R{page_extra} >>"
            )
        )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>")
    return pdf.build(catalog)


def report_pdf() -> bytes:
    """Two pages of text, the first with a chart image (a figure: over 96 px) and its caption below it."""
    figure = text_ops(["Figure 1: Revenue by quarter, 2024."], 72, 380)
    first = b"q 240 0 0 180 72 400 cm /Im1 Do Q\n" + figure + text_ops(["Quarterly report", "Revenue rose in Q4."])
    second = text_ops(["Outlook", "Hiring continues in support and research."])
    return simple_pdf([first, second], images={"Im1": chart_image(160, 120)})


# --- the cases -------------------------------------------------------------------------------------------------

CASES: list[Case] = []


def case(
    name: str, expect: Expect, *, run: Run = "files", heavy: bool = False, about: str = "", subject: str | None = None
) -> Callable[[Writer], Writer]:
    def register(write: Writer) -> Writer:
        CASES.append(Case(name, write, expect, run, heavy, about, subject))
        return write

    return register


def _bytes_case(name: str, filename: str, data: Callable[[], bytes], expect: Expect, about: str = "") -> None:
    """A case that is one file of these bytes."""

    def write(d: Path, _outside: Path) -> None:
        (d / filename).write_bytes(data())

    CASES.append(Case(name, write, expect, about=about))


# Corrupt, truncated and empty files of every image format.
_FORMATS = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "tiff": "TIFF", "webp": "WEBP"}
_MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "jpeg": b"\xff\xd8\xff\xe0", "gif": b"GIF89a", "tiff": b"II*\x00"}
for _ext, _fmt in _FORMATS.items():
    _magic = _MAGIC.get(_ext, b"RIFF\x40\x00\x00\x00WEBPVP8 ")
    _bytes_case(
        f"{_ext}_corrupt",
        f"chart.{_ext}",
        functools.partial(operator.add, _magic, b"definitely not image data" * 20),
        Expect("failed", CORRUPT),
    )
    _bytes_case(
        f"{_ext}_truncated",
        f"chart.{_ext}",
        functools.partial(lambda f: half(image_bytes(f, chart_image(160, 120, 3))), _fmt),
        Expect("failed", TRUNCATED),
    )
    _bytes_case(f"{_ext}_empty", f"chart.{_ext}", lambda: b"", Expect("failed", EMPTY))

_bytes_case("png_bomb", "bomb.png", lambda: bomb_png(60_000, 60_000), Expect("failed", BOMB), "3.6 Gpixel in 100 bytes")
_bytes_case("png_1x100000", "strip.png", lambda: grey_png(1, 100_000), Expect("failed", ASPECT), "277 bytes")
_bytes_case("png_1x20000", "strip.png", lambda: grey_png(1, 20_000), Expect("failed", ASPECT))
_bytes_case("png_20000x1", "strip.png", lambda: grey_png(20_000, 1), Expect("failed", ASPECT))
_bytes_case("zero_byte_pdf", "report.pdf", lambda: b"", Expect("failed", EMPTY))
_bytes_case("unsupported_type", "data.xyz", lambda: b"1,2,3\n", Expect("failed", ("unsupported",)))
_bytes_case("pdf_named_png", "chart.png", report_pdf, Expect("failed", CORRUPT), "content is not what the name says")


@case("png_bad_crc", Expect("failed", (*CORRUPT, "crc", "checksum")))
def _png_bad_crc(d: Path, _o: Path) -> None:
    good = image_bytes("PNG")
    header_end = 8 + 4 + 4 + 13  # signature, IHDR length, type, data: then its CRC
    (d / "chart.png").write_bytes(good[:header_end] + b"\xde\xad\xbe\xef" + good[header_end + 4 :])


@case("gif_huge_claimed", Expect("failed", BOMB), about="65535x65535 claimed by a 30-byte GIF")
def _gif_huge(d: Path, _o: Path) -> None:
    screen = struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00"
    (d / "huge.gif").write_bytes(b"GIF89a" + screen + frame + b";")


@case("bmp_huge_claimed", Expect("failed", BOMB))
def _bmp_huge(d: Path, _o: Path) -> None:
    info = struct.pack("<IiiHHIIiiII", 40, 100_000, 100_000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    (d / "huge.bmp").write_bytes(b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + info + b"\0" * 64)


@case("jpeg_bad_exif", Expect("indexed", sources=1), about="orientation 9 and an EXIF IFD pointer far past the end")
def _jpeg_bad_exif(d: Path, _o: Path) -> None:
    def entry(tag: int, kind: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, 1, value)

    ifd = struct.pack("<H", 2) + entry(0x0112, 3, 9) + entry(0x8769, 4, 0xFFFFFF00) + struct.pack("<I", 0)
    exif = b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd
    (d / "photo.jpg").write_bytes(image_bytes("JPEG", exif=exif))


@case("gif_500_frames", Expect("indexed", sources=1), about="an animation: the first frame is the chart")
def _gif_frames(d: Path, _o: Path) -> None:
    frames = [chart_image(32, 24, i) for i in range(500)]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=20, loop=0)


@case("png_wrong_extension", Expect("indexed", sources=1), about="a JPEG named .png: read by content")
def _wrong_ext(d: Path, _o: Path) -> None:
    (d / "chart.png").write_bytes(image_bytes("JPEG"))


# PDFs


@case("pdf_page_tree_loop", Expect("failed", ("load page", "page tree", *CORRUPT, "unreadable", *NOTHING)))
def _pdf_tree_loop(d: Path, _o: Path) -> None:
    pdf = PdfBuilder()
    catalog = pdf.add("<< /Type /Catalog /Pages 2 0 R >>")
    pdf.add("<< /Type /Pages /Kids [2 0 R] /Count 1 >>")  # its own kid
    (d / "loop.pdf").write_bytes(pdf.build(catalog))


@case(
    "pdf_partly_broken_tree",
    Expect("indexed", warning=PAGE, sources=1),
    about="page 1 is fine, page 2 is a /Pages node that contains itself",
)
def _pdf_partly_broken(d: Path, _o: Path) -> None:
    pdf = PdfBuilder()
    catalog, tree, loop = pdf.add(""), pdf.add(""), pdf.add("")
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    content = pdf.stream(text_ops(["The first page reads fine."]))
    resources = f"<< /Font << /F1 {font} 0 R >> >>"
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Resources {resources} /Contents {content} 0 R >>"
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R {loop} 0 R] /Count 2 >>")
    pdf.set(loop, f"<< /Type /Pages /Parent {tree} 0 R /Kids [{loop} 0 R] /Count 1 >>")
    (d / "half.pdf").write_bytes(pdf.build(catalog))


@case("pdf_encrypted", Expect("failed", ("encrypted",)))
def _pdf_encrypted(d: Path, _o: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(io.BytesIO(report_pdf())).pages:
        writer.add_page(page)
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-256")
    with (d / "locked.pdf").open("wb") as f:
        writer.write(f)


_bytes_case(
    "pdf_broken", "broken.pdf", lambda: b"%PDF-1.7\n1 0 obj garbage\n%%EOF", Expect("failed", ("corrupt", "unreadable"))
)
_bytes_case(
    "pdf_truncated",
    "cut.pdf",
    lambda: report_pdf()[: len(report_pdf()) * 3 // 5],
    Expect("handled", (*CORRUPT, "unreadable")),
)
_bytes_case(
    "pdf_no_pages",
    "none.pdf",
    lambda: simple_pdf([]),
    Expect("failed", (*NOTHING, "0 pages", "no page", "unreadable pdf")),  # PDFium refuses a document of no page
)
_bytes_case(
    "pdf_zero_mediabox",
    "flat.pdf",
    lambda: simple_pdf([text_ops(["A page with no area."])], media_box="0 0 0 0"),
    Expect("handled", PAGE + NOTHING + CORRUPT),
)
_bytes_case(
    "pdf_huge_mediabox",
    "poster.pdf",
    lambda: simple_pdf([text_ops(["A poster of 200 by 200 inches."])], media_box="0 0 14400 14400"),
    Expect("indexed", sources=1),
    "14400 x 14400 pt: rendered at the usual long side, not at 72 dpi",
)
_bytes_case(
    "pdf_sliver_page",
    "sliver.pdf",
    lambda: simple_pdf([text_ops(["A page one point high."], 10, 0)], media_box="0 0 14400 1"),
    Expect("handled", PAGE + ASPECT + NOTHING),
    "14400 x 1 pt: a rendered page 1024 x 0 pixels",
)


@case("pdf_corrupt_image", Expect("indexed", sources=1), about="a 200x200 DCT image whose data is garbage")
def _pdf_corrupt_image(d: Path, _o: Path) -> None:
    pdf = PdfBuilder()
    catalog, tree = pdf.add(""), pdf.add("")
    font = pdf.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    junk = pdf.stream(
        b"\xff\xd8\xff" + b"garbage" * 300,
        " /Type /XObject /Subtype /Image /Width 200 /Height 200 /ColorSpace /DeviceRGB /BitsPerComponent 8"
        " /Filter /DCTDecode",
        compress=False,
    )
    content = pdf.stream(b"q 200 0 0 200 72 400 cm /Im1 Do Q\n" + text_ops(["Figure 1: a broken picture."]))
    resources = f"<< /Font << /F1 {font} 0 R >> /XObject << /Im1 {junk} 0 R >> >>"
    page = pdf.add(
        f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Resources {resources} /Contents {content} 0 R >>"
    )
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    (d / "figure.pdf").write_bytes(pdf.build(catalog))


_bytes_case(
    "pdf_nested_arrays",
    "nested.pdf",
    lambda: simple_pdf(
        [text_ops(["Deep arrays in the page dictionary."])], page_extra=" /Junk " + "[" * 100_000 + "]" * 100_000
    ),
    Expect("handled", CORRUPT + NESTING + ("unreadable",)),
    "100,000 nested arrays in a page dictionary",
)


@case("pdf_many_tiny_images", Expect("indexed", warning=OBJECTS, sources=1), about="30,000 1x1 images on one page")
def _pdf_tiny_images(d: Path, _o: Path) -> None:
    ops = b"".join(f"q 2 0 0 2 {i % 300 * 2} {i // 300 * 2} cm /Im1 Do Q\n".encode() for i in range(30_000))
    content = ops + text_ops(["A page of dots."])
    (d / "dots.pdf").write_bytes(simple_pdf([content], images={"Im1": Image.new("RGB", (1, 1), "red")}))


# Text


_bytes_case("text_latin1", "latin1.txt", lambda: "Café crème brûlée".encode("latin-1"), Expect("failed", NOT_UTF8))
_bytes_case(
    "text_utf16_bom",
    "utf16.txt",
    lambda: "Quarterly revenue rose in the fourth quarter.".encode("utf-16"),
    Expect("indexed", sources=1),
    "a byte-order mark says the encoding: read it, do not refuse it",
)
_bytes_case("text_only_nuls", "nuls.txt", lambda: b"\0" * 4096, Expect("failed", NOTHING))
_bytes_case("text_whitespace_only", "blank.txt", lambda: b" \n\t\r\n   \n" * 50, Expect("failed", NOTHING))
_bytes_case("text_binary_garbage", "random.txt", lambda: bytes(range(256)) * 8, Expect("failed", NOT_UTF8 + NOTHING))
_bytes_case("markdown_latin1", "notes.md", lambda: "# Café\n\nCrème".encode("latin-1"), Expect("failed", NOT_UTF8))


# SVG charts (drawn by CairoSVG: nothing fetched, nothing read, every size bounded)

_SVG = '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="{w}" height="{h}">'


def _use_bomb() -> bytes:
    levels = "".join(
        f'<g id="a{i}"><use xlink:href="#a{i - 1}"/><use xlink:href="#a{i - 1}"/></g>' for i in range(1, 40)
    )
    body = f'<defs><rect id="a0" width="1" height="1"/>{levels}</defs><use xlink:href="#a39"/></svg>'
    return (_SVG.format(w=100, h=100) + body).encode()


_bytes_case(
    "svg_xxe",
    "chart.svg",
    lambda: (
        b'<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + (_SVG.format(w=100, h=100) + "<text>&x;</text></svg>").encode()
    ),
    Expect("failed", ("entities",)),
    "an external entity naming /etc/passwd",
)
_bytes_case(
    "svg_remote_image",
    "chart.svg",
    lambda: (
        _SVG.format(w=100, h=100) + '<image xlink:href="http://127.0.0.1:9/x.png" width="50" height="50"/>'
        '<rect width="20" height="20"/></svg>'
    ).encode(),
    Expect("indexed", warning=("links not followed",), sources=1),
    "a chart linking an image on the network: drawn without it",
)
_bytes_case(
    "svg_use_bomb", "chart.svg", _use_bomb, Expect("failed", ("nested",)), "2^39 rectangles through <use> chains"
)
_bytes_case(
    "svg_huge_canvas",
    "chart.svg",
    lambda: (_SVG.format(w=100000, h=100000) + '<rect width="10" height="10"/></svg>').encode(),
    Expect("indexed", sources=1),
    "a 100,000 x 100,000 canvas: drawn at most 1,536 px",
)
_bytes_case(
    "svg_broken", "chart.svg", lambda: _SVG.format(w=9, h=9).encode() + b"<rect", Expect("failed", ("well-formed",))
)


# Image sidecars (captions)


def _with_sidecar(name: str, sidecar: str, data: Callable[[], bytes], expect: Expect, about: str = "") -> None:
    def write(d: Path, _o: Path) -> None:
        (d / "chart.png").write_bytes(image_bytes("PNG"))
        (d / sidecar).write_bytes(data())

    CASES.append(Case(name, write, expect, about=about))


_with_sidecar("sidecar_not_json", "chart.json", lambda: b"{'title': 'single quotes',", Expect("failed", SIDECAR))
_with_sidecar("sidecar_nested_100k", "chart.json", lambda: b"[" * 100_000 + b"]" * 100_000, Expect("failed", SIDECAR))
_with_sidecar(
    "sidecar_nested_dicts_200",
    "chart.json",
    lambda: b'{"a": ' * 200 + b'"deep"' + b"}" * 200,
    Expect("failed", SIDECAR),
    "deeper than MMRAG_MAX_NESTING but within Python's own limits",
)
_with_sidecar(
    "sidecar_nan_infinity",
    "chart.json",
    lambda: b'{"title": "Revenue", "values": [NaN, Infinity, -Infinity, 1e999, -0.0]}',
    Expect("indexed", sources=1),
    "what Python's json module reads is a caption",
)
_with_sidecar(
    "sidecar_huge_int", "chart.json", lambda: b'{"title": "Big", "n": ' + b"9" * 5000 + b"}", Expect("failed", SIDECAR)
)
_with_sidecar("sidecar_not_utf8", "chart.txt", lambda: "Caf\xe9".encode("latin-1"), Expect("failed", NOT_UTF8))


@case("sidecar_is_directory", Expect("indexed", sources=1))
def _sidecar_dir(d: Path, _o: Path) -> None:
    (d / "chart.png").write_bytes(image_bytes("PNG"))
    (d / "chart.txt").mkdir()


# HTML and Markdown


_bytes_case(
    "html_100k_nested_divs",
    "deep.html",
    lambda: b"<html><body>" + b"<div>" * 100_000 + b"Revenue rose." + b"</div>" * 100_000 + b"</body></html>",
    Expect("handled", NESTING),
)
_bytes_case(
    "html_100k_unclosed_tags",
    "unclosed.html",
    lambda: b"<p>Revenue rose.</p>" + b"<span><b><i>" * 33_334,
    Expect("handled", NESTING),
)
_bytes_case(
    "markdown_10k_blockquotes",
    "quotes.md",
    lambda: b">" * 10_000 + b" Revenue rose in the fourth quarter.\n",
    Expect("handled", NESTING),
)
_bytes_case(
    "markdown_10k_nested_lists",
    "lists.md",
    lambda: b"- " * 10_000 + b"item\n",  # "- - item" is a list in a list: 10,000 deep in 20 kB
    Expect("handled", NESTING),
)


def _outside_link_case(name: str, filename: str, markup: Callable[[Path, Path], str], about: str) -> None:
    def write(d: Path, outside: Path) -> None:
        (d / filename).write_text(markup(d, outside))

    CASES.append(Case(name, write, Expect("indexed", warning=OUTSIDE, sources=1, no_images=True), about=about))


def _html(src: str) -> str:
    figure = f"<figure><img src='{src}'><figcaption>Secret chart</figcaption></figure>"
    return f"<html><body><p>Quarterly review.</p>{figure}</body></html>"


_outside_link_case(
    "html_img_parent_path",
    "page.html",
    lambda _d, _o: _html("../../outside/secret.png"),
    "<img src='../../outside/...'>",
)
_outside_link_case(
    "html_img_absolute_path", "page.html", lambda _d, o: _html(str(o / "secret.png")), "<img src='/abs/...'>"
)
_outside_link_case("html_img_file_url", "page.html", lambda _d, o: _html((o / "secret.png").as_uri()), "file:// URL")
_outside_link_case(
    "markdown_img_outside",
    "notes.md",
    lambda _d, _o: "# Notes\n\nSee below.\n\n![Secret](../../outside/secret.png)\n",
    "",
)
_outside_link_case(
    "markdown_raw_img_outside",
    "notes.md",
    lambda _d, o: f'# Notes\n\nRaw HTML in Markdown:\n\n<img src="{o / "secret.png"}" alt="secret">\n',
    "",
)


@case("html_img_symlink_outside", Expect("indexed", warning=OUTSIDE, sources=1, no_images=True), subject="page.html")
def _html_symlinked_img(d: Path, outside: Path) -> None:
    (d / "inside.png").symlink_to(outside / "secret.png")
    (d / "page.html").write_text(_html("inside.png"))


# The file system: links, names, special files, depth, permissions


@case("symlink_text_outside", Expect("absent", told=OUTSIDE), run="tree")
def _link_text_out(d: Path, outside: Path) -> None:
    (d / "notes.txt").symlink_to(outside / "secret.txt")


@case("symlink_image_outside", Expect("absent", told=OUTSIDE), run="tree")
def _link_image_out(d: Path, outside: Path) -> None:
    (d / "chart.png").symlink_to(outside / "secret.png")


@case("symlink_dir_outside", Expect("absent"), run="tree")
def _link_dir_out(d: Path, outside: Path) -> None:
    (d / "more").symlink_to(outside, target_is_directory=True)


@case("symlink_etc_passwd", Expect("absent", told=OUTSIDE), run="tree")
def _link_passwd(d: Path, _o: Path) -> None:
    (d / "passwd.txt").symlink_to("/etc/passwd")


@case("symlink_dev_zero", Expect("absent"), run="tree", about="an endless file behind a link")
def _link_zero(d: Path, _o: Path) -> None:
    (d / "zero.txt").symlink_to("/dev/zero")


@case("symlink_loop", Expect("absent"), run="tree")
def _link_loop(d: Path, _o: Path) -> None:
    (d / "a.txt").symlink_to("b.txt")
    (d / "b.txt").symlink_to("a.txt")


@case("symlink_dir_self_loop", Expect("indexed", sources=1), run="tree", about="sub -> . (endless descent)")
def _link_self(d: Path, _o: Path) -> None:
    (d / "chart.png").write_bytes(image_bytes("PNG"))
    (d / "sub").symlink_to(".", target_is_directory=True)


@case("symlink_dangling", Expect("absent"), run="tree")
def _link_dangling(d: Path, _o: Path) -> None:
    (d / "gone.png").symlink_to(d / "never-existed.png")


@case("symlink_within_root", Expect("indexed"), run="tree", about="links that stay inside the root are fine")
def _link_inside(d: Path, _o: Path) -> None:
    (d / "real.png").write_bytes(image_bytes("PNG"))
    (d / "alias.png").symlink_to("real.png")


@case("name_not_utf8", Expect("indexed", sources=1), run="tree", about="b'caf\\xe9.png'")
def _name_bytes(d: Path, _o: Path) -> None:
    (d / os.fsdecode(b"caf\xe9.png")).write_bytes(image_bytes("PNG"))


@case("name_escape_markup", Expect("indexed", sources=1), run="tree")
def _name_escape(d: Path, _o: Path) -> None:
    (d / "\x1b[31mred[bold]chart[blink].png").write_bytes(image_bytes("PNG"))


@case("name_bidi_override", Expect("indexed", sources=1), run="tree", about="U+202E shows 'chart.exe' as 'exe.trahc'")
def _name_bidi(d: Path, _o: Path) -> None:
    (d / "report\u202egnp.exe.png").write_bytes(image_bytes("PNG"))


@case("name_newline", Expect("indexed", sources=1), run="tree")
def _name_newline(d: Path, _o: Path) -> None:
    (d / "two\nlines.png").write_bytes(image_bytes("PNG"))


def make_deep(d: Path, depth: int, name: str = "dir") -> None:
    """depth nested folders with a note at the bottom, built through folder fds (the path outgrows PATH_MAX)."""
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        note = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(note, b"Written at the bottom of a very deep folder tree.")
        os.close(note)
    finally:
        os.close(fd)


@case("folders_1900_deep", Expect("absent", told=NESTING), run="tree", about="7,600-character paths")
def _deep_1900(d: Path, _o: Path) -> None:
    make_deep(d, 1900)


@case("folders_100_deep", Expect("absent", told=NESTING), run="tree")
def _deep_100(d: Path, _o: Path) -> None:
    make_deep(d, 100)


@case("folders_40_deep", Expect("indexed", sources=1), run="tree", about="within MMRAG_MAX_NESTING")
def _deep_40(d: Path, _o: Path) -> None:
    make_deep(d, 40)


@case("fifo", Expect("absent"), run="tree", about="a named pipe: opening it for reading blocks forever")
def _fifo(d: Path, _o: Path) -> None:
    os.mkfifo(d / "pipe.txt")


@case("fifo_named_png", Expect("absent"), run="tree")
def _fifo_png(d: Path, _o: Path) -> None:
    os.mkfifo(d / "chart.png")


@case("fifo_sidecar", Expect("indexed", sources=1), run="tree", about="the caption file is a pipe", subject="chart.png")
def _fifo_sidecar(d: Path, _o: Path) -> None:
    (d / "chart.png").write_bytes(image_bytes("PNG"))
    os.mkfifo(d / "chart.txt")


@case(
    "fifo_html_image",
    Expect("indexed", sources=1, no_images=True),
    run="tree",
    about="<img> of a pipe",
    subject="page.html",
)
def _fifo_figure(d: Path, _o: Path) -> None:
    os.mkfifo(d / "figure.png")
    (d / "page.html").write_text(_html("figure.png"))


@case("char_device_zero", Expect("absent"), run="tree", about="a device node like /dev/zero named zero.txt")
def _chardev(d: Path, _o: Path) -> None:
    try:
        os.mknod(d / "zero.txt", 0o644 | stat.S_IFCHR, os.makedev(1, 5))
    except OSError as e:
        raise CaseUnavailableError(f"mknod not permitted here: {e.strerror}") from e


@case("unix_socket", Expect("absent"), run="tree")
def _socket(d: Path, _o: Path) -> None:
    path = d / "socket.txt"
    if len(os.fsencode(path)) >= 100:
        raise CaseUnavailableError("path too long for a unix socket")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


@case("unreadable_file", Expect("failed", ("permission denied",)), run="tree")
def _unreadable(d: Path, _o: Path) -> None:
    if os.geteuid() == 0:
        raise CaseUnavailableError("root reads files whatever their permissions")
    (d / "secret.txt").write_text("hidden")
    (d / "secret.txt").chmod(0)


@case("unreadable_folder", Expect("absent", told=PERMISSION), run="tree")
def _unreadable_dir(d: Path, _o: Path) -> None:
    if os.geteuid() == 0:
        raise CaseUnavailableError("root reads folders whatever their permissions")
    (d / "locked").mkdir()
    (d / "locked" / "notes.txt").write_text("hidden")
    (d / "locked").chmod(0)


# Heavy cases: each in its own run, built at run time


@case("text_50mb_one_line", Expect("indexed", warning=TEXT_LIMIT, sources=1), run="own", heavy=True)
def _text_50mb(d: Path, _o: Path) -> None:
    words = b"revenue rose in the fourth quarter while costs fell "
    with (d / "huge.txt").open("wb") as f:
        block = words * ((1 << 20) // len(words) + 1)
        for _ in range(50):
            f.write(block[: 1 << 20])


@case("pdf_3000_blank_pages", Expect("indexed", warning=PAGES, sources=1, max_pages=2000), run="own", heavy=True)
def _pdf_3000(d: Path, _o: Path) -> None:
    pdf = PdfBuilder()
    catalog, tree, content = pdf.add(""), pdf.add(""), pdf.stream(b"")
    kids = [
        pdf.add(f"<< /Type /Page /Parent {tree} 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R >>")
        for _ in range(3000)
    ]
    pdf.set(catalog, f"<< /Type /Catalog /Pages {tree} 0 R >>")
    pdf.set(tree, f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count 3000 >>")
    (d / "blank.pdf").write_bytes(pdf.build(catalog))


@case("pdf_100k_paths", Expect("indexed", sources=1), run="own", heavy=True, about="rendered in bounded time")
def _pdf_paths(d: Path, _o: Path) -> None:
    ops = b"".join(
        f"{i % 500} {i // 500 * 3} m {i % 500 + 1} {i // 500 * 3 + 2} l S\n".encode() for i in range(100_000)
    )
    (d / "paths.pdf").write_bytes(simple_pdf([b"0.1 w\n" + ops + text_ops(["A page of 100,000 paths."])]))


BY_NAME = {c.name: c for c in CASES}


# --- building and checking -------------------------------------------------------------------------------------


def write_outside(outside: Path) -> Path:
    """The folder next to the indexed root that hostile links point at."""
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.png").write_bytes(image_bytes("PNG", chart_image(96, 72, 9)))
    (outside / "secret.txt").write_text(SECRET_TEXT)
    return outside


def write_cases(root: Path, outside: Path, cases: Iterable[Case]) -> dict[str, str]:
    """Build each case in root/<name>/; returns {name: why it could not be built} for the unavailable ones."""
    unavailable = {}
    for c in cases:
        folder = root / c.name
        folder.mkdir(parents=True)
        try:
            c.write(folder, outside)
        except CaseUnavailableError as e:
            unavailable[c.name] = str(e)
            remove_tree(folder)
    return unavailable


def remove_tree(path: Path) -> None:
    """rm -rf that copes with trees deeper than PATH_MAX and the recursion limit, and with chmod 000 folders."""
    if not os.path.lexists(path):
        return
    if not stat.S_ISDIR(path.lstat().st_mode):
        path.unlink()
        return
    path.chmod(0o700)
    stack = [os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)]
    names: list[str] = []
    while stack:
        fd, child = stack[-1], None
        for name in os.listdir(fd):  # noqa: PTH208 (through the folder's fd: no path to outgrow PATH_MAX)
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                child = name
                break
            os.unlink(name, dir_fd=fd)
        if child is not None:
            os.chmod(child, 0o700, dir_fd=fd)
            stack.append(os.open(child, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd))
            names.append(child)
        else:
            os.close(stack.pop())
            if names:
                os.rmdir(names.pop(), dir_fd=stack[-1])
    path.rmdir()


def warning_texts(summary: Mapping[str, Any]) -> list[str]:
    """The run's warnings as text (each a string, or an object whose values are joined)."""
    texts = []
    for warning in summary.get("warnings") or []:
        if isinstance(warning, Mapping):
            texts.append(" ".join(str(v) for v in warning.values()))
        else:
            texts.append(str(warning))
    return texts


def check(c: Case, summary: Mapping[str, Any], objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """What is wrong with how one run treated case `c` (empty: it did what the case expects).

    `summary` is the run's JSON object; `objects` the stored objects' properties (source_path, kind, page)."""
    folder = f"/{c.name}/"
    where = folder + (c.subject or "")

    def about(path: object) -> bool:
        return str(path).endswith(where) if c.subject else folder in str(path)

    failed = [str(f["reason"]) for f in summary.get("failures", []) if about(f["path"])]
    warned = [w for w in warning_texts(summary) if folder in w]
    mine = [o for o in objects if about(o.get("source_path"))]
    e = c.expect
    problems = []

    def holds(texts: list[str], fragments: tuple[str, ...]) -> bool:
        return any(f in t.lower() for t in texts for f in fragments)

    if failed and mine and e.outcome != "indexed":
        problems.append(f"both failed {failed} and stored {len(mine)} objects")
    if e.outcome == "indexed" or (e.outcome == "handled" and mine):
        if failed and e.outcome == "indexed":
            problems.append(f"expected indexed, failed: {failed}")
        if not mine:
            problems.append("expected indexed, nothing stored" + (f" (warnings: {warned})" if warned else ""))
        sources = {str(o["source_path"]) for o in mine}
        if e.sources is not None and mine and len(sources) != e.sources:
            problems.append(f"expected {e.sources} indexed file(s), got {sorted(sources)}")
        if e.no_images and any(o.get("kind") == "image" for o in mine):
            problems.append("an image outside the root (or unreadable) was stored as a figure")
        pages = [int(o["page"]) for o in mine if o.get("kind") == "page" and o.get("page") is not None]
        if e.max_pages is not None and pages and max(pages) > e.max_pages:
            problems.append(f"page {max(pages)} stored, more than {e.max_pages}")
    elif e.outcome == "failed" or (e.outcome == "handled" and failed):
        if not failed:
            problems.append(f"expected failed ({'/'.join(e.reason)}), " + ("stored" if mine else "nothing reported"))
        elif e.reason and not holds(failed, e.reason):
            problems.append(f"reason {failed} lacks any of {e.reason}")
    elif e.outcome == "absent":
        if mine:
            problems.append(f"expected nothing stored, got {len({str(o['source_path']) for o in mine})} file(s)")
    else:  # handled, neither stored nor failed
        problems.append("neither indexed nor reported as failed" + (f" (warnings: {warned})" if warned else ""))
    if e.warning and not holds(warned, e.warning):
        problems.append(f"no warning with any of {e.warning} (warnings: {warned}, failures: {failed})")
    if e.told and not holds(warned + failed, e.told):
        problems.append(f"no warning or failure with any of {e.told} (warnings: {warned}, failures: {failed})")
    return problems


def outside_root(root: Path, objects: Sequence[Mapping[str, Any]]) -> list[str]:
    """Objects whose file or image lies outside `root`, or whose text came from the outside folder."""
    prefix = str(root.resolve()).rstrip("/") + "/"
    bad = []
    for o in objects:
        for key in ("source_path", "image_path"):
            value = o.get(key)
            if value and not str(value).startswith(prefix):
                bad.append(f"{key}={value}")
        if SECRET_TEXT in str(o.get("text") or ""):
            bad.append(f"secret text stored from {o.get('source_path')}")
    return bad


# --- running one command with bounds ---------------------------------------------------------------------------


@dataclass
class Bounded:
    """How a bounded command ended."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float
    killed: str | None = None
    """'timeout' or 'memory' when this runner killed it."""


def run_bounded(
    argv: Sequence[str], env: Mapping[str, str], *, timeout: float, max_rss_mb: float | None = None
) -> Bounded:
    """Run a command, killing it past `timeout` seconds or `max_rss_mb` of resident memory; peak RSS from wait4."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, env=dict(env), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        status, peak_mb, killed = wait_bounded(process.pid, started, timeout, max_rss_mb)
        process.returncode = status
        out.seek(0), err.seek(0)
        return Bounded(
            returncode=status,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            seconds=time.monotonic() - started,
            peak_rss_mb=peak_mb,
            killed=killed,
        )


def wait_bounded(pid: int, started: float, timeout: float, max_rss_mb: float | None) -> tuple[int, float, str | None]:
    """Wait for child `pid` (exit code, peak RSS in MB from wait4, 'timeout'/'memory' when it had to be killed)."""
    killed = None
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() - started > timeout:
            killed = "timeout"
        elif max_rss_mb is not None and _rss_mb(pid) > max_rss_mb:
            killed = "memory"
        if killed:
            os.kill(pid, 9)
            _, status, usage = os.wait4(pid, 0)
            break
        time.sleep(0.05)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, killed


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def one_json_object(stdout: str) -> dict[str, Any]:
    """The single JSON object a `--json` command prints (ValueError when there is not exactly one)."""
    decoder = json.JSONDecoder()
    text = stdout.strip()
    value, end = decoder.raw_decode(text)
    if text[end:].strip() or not isinstance(value, dict):
        raise ValueError(f"expected exactly one JSON object on stdout, got: {text[:300]!r}")
    return value
