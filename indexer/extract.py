"""Files -> items: decode images, render and read PDFs, chunk text, find figures and their captions.

Runs in worker processes, so it imports no model code. Each bad file becomes a FileResult with a one-line reason.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps

from indexer.items import FileResult, Item

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
TEXT_SUFFIXES = frozenset({".txt", ".md", ".markdown", ".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = IMAGE_SUFFIXES | TEXT_SUFFIXES | PDF_SUFFIXES
SIDECAR_SUFFIXES = (".txt", ".json")


PDFIUM_LOCK = threading.Lock()
"""PDFium is not thread-safe: every use of pypdfium2 in this process holds this lock."""


class BadFileError(Exception):
    """The file cannot be indexed; the message is the reason shown to the user."""


@dataclass(frozen=True)
class ExtractOptions:
    chunk_size: int = 1000
    """Characters per text chunk."""
    chunk_overlap: int = 150
    max_pixels: int = 64_000_000
    """Larger images are refused as possible decompression bombs."""
    page_long_side: int = 1024
    """Rendered PDF pages are this many pixels on their long side."""
    min_figure_px: int = 96
    """Embedded PDF images smaller than this (either side) are decoration, not figures."""


def sidecars(image: Path) -> list[Path]:
    """Caption files of an image: chart.txt / chart.json or chart.png.txt / chart.png.json."""
    names = [image.with_suffix(s) for s in SIDECAR_SUFFIXES] + [
        image.with_name(image.name + s) for s in SIDECAR_SUFFIXES
    ]
    return [p for p in names if p.is_file()]


def file_digest(paths: Iterable[Path]) -> str:
    """sha256 over the bytes of a file and the files its objects depend on (sidecars, linked images)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def extract_file(path: Path, sha256: str, options: ExtractOptions) -> FileResult:
    """All items of one file; never raises for a bad file (the error goes in the result)."""
    stat = path.stat()
    result = FileResult(path=path, sha256=sha256, size=stat.st_size, mtime=stat.st_mtime)
    try:
        if stat.st_size == 0:
            raise BadFileError("empty file")
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            result.items = _image_items(path, options)
        elif suffix in PDF_SUFFIXES:
            result.items = _pdf_items(path, options)
        elif suffix in TEXT_SUFFIXES:
            result.items = _text_items(path, options)
        else:
            raise BadFileError(f"unsupported file type {suffix or '(no extension)'}")
        if not result.items:
            raise BadFileError("nothing to index (no text or images found)")
    except BadFileError as e:
        result.error = str(e)
    except PermissionError:
        result.error = "permission denied"
    except OSError as e:
        result.error = f"cannot read: {e.strerror or e}"
    for item in result.items:
        item.content_sha256 = _item_digest(item)
        if item.image is not None:
            item.thumbnail = thumbnail_jpeg(item.image)
    return result


def thumbnail_jpeg(image: Image.Image, size: int = 320) -> str:
    """The image at most `size` pixels on its long side, as base64 JPEG (what the collection stores)."""
    thumb = image.copy()
    thumb.thumbnail((size, size), reducing_gap=2.0)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def load_image(path: Path, max_pixels: int) -> Image.Image:
    """An RGB image (first frame of animations, EXIF orientation applied, transparency on white)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise BadFileError(f"image too large ({width}x{height} pixels): possible decompression bomb")
                img.seek(0)
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img) or img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadFileError(f"possible decompression bomb: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise BadFileError("not a readable image (corrupt or unsupported format)") from e
    except (OSError, SyntaxError, ValueError) as e:
        if isinstance(e, PermissionError):
            raise
        raise BadFileError(f"corrupt or truncated image: {e}") from e


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def _image_items(path: Path, options: ExtractOptions) -> list[Item]:
    image = load_image(path, options.max_pixels)
    caption = " ".join(_sidecar_text(p) for p in sidecars(path)).strip()
    return [Item(kind="image", locator="image", text=caption, image=image, image_path=str(path))]


def _sidecar_text(path: Path) -> str:
    text = _read_text(path)
    if path.suffix != ".json":
        return text.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadFileError(f"sidecar {path.name} is not valid JSON: {e.msg}") from e
    if isinstance(data, dict):
        parts = [str(data[k]) for k in ("title", "caption", "description") if data.get(k)]
        rest = {k: v for k, v in data.items() if k not in ("title", "caption", "description")}
        if rest:
            parts.append(_flatten(rest))
        return ". ".join(parts)
    return _flatten(data)


def _flatten(value: object) -> str:
    """JSON as words (`Engineering 42, Sales 17`): what BM25 and the text embedder read best."""
    if isinstance(value, dict):
        pairs = [_flatten(v) if k in ("data", "values", "table") else f"{k} {_flatten(v)}" for k, v in value.items()]
        return ", ".join(pairs)
    if isinstance(value, list):
        return ", ".join(_flatten(v) for v in value)
    return str(value)


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadFileError(f"not UTF-8 text (invalid byte at offset {e.start})") from e


def chunk_text(text: str, options: ExtractOptions) -> list[str]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=options.chunk_size, chunk_overlap=options.chunk_overlap)
    return [c.strip() for c in splitter.split_text(text) if c.strip()]


def _text_items(path: Path, options: ExtractOptions) -> list[Item]:
    from indexer.documents import parse_document

    raw = _read_text(path)
    document = parse_document(path, raw)
    items = [
        Item(kind="text", locator=f"chunk:{i}", text=chunk, chunk=i)
        for i, chunk in enumerate(chunk_text(document.text, options))
    ]
    for i, figure in enumerate(document.figures):
        try:
            image = load_image(figure.path, options.max_pixels)
        except (BadFileError, OSError):
            continue  # a broken linked image costs the figure, not the document
        items.append(
            Item(kind="image", locator=f"figure:{i}", text=figure.caption, image=image, image_path=str(figure.path))
        )
    return items


def _pdf_items(path: Path, options: ExtractOptions) -> list[Item]:
    with PDFIUM_LOCK:
        return _pdf_items_locked(path, options)


def _pdf_items_locked(path: Path, options: ExtractOptions) -> list[Item]:
    import pypdfium2 as pdfium

    try:
        pdf = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as e:
        message = str(e).lower()
        if "password" in message:
            raise BadFileError("encrypted PDF (password required)") from e
        raise BadFileError(f"corrupt or unreadable PDF: {e}") from e
    try:
        items: list[Item] = []
        for index in range(len(pdf)):
            items += _page_items(pdf[index], index + 1, options)
        return items
    finally:
        pdf.close()


def _page_items(page: Any, number: int, options: ExtractOptions) -> list[Item]:
    textpage = page.get_textpage()
    text = textpage.get_text_range().replace("\r\n", "\n").strip()
    width, height = page.get_size()
    scale = options.page_long_side / max(width, height, 1)
    rendered = page.render(scale=scale).to_pil().convert("RGB")
    items = [Item(kind="page", locator=f"page:{number}", text=text[:1000], image=rendered, page=number)]
    for i, chunk in enumerate(chunk_text(text, options)):
        items.append(Item(kind="text", locator=f"page:{number}:chunk:{i}", text=chunk, page=number, chunk=i))
    items += _pdf_figures(page, textpage, number, text, options)
    return items


def _pdf_figures(page: Any, textpage: Any, number: int, page_text: str, options: ExtractOptions) -> list[Item]:
    import pypdfium2.raw as pdfium_c

    figures: list[Item] = []
    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=3):
        px_width, px_height = obj.get_px_size()
        if min(px_width, px_height) < options.min_figure_px or px_width * px_height > options.max_pixels:
            continue
        try:
            image = obj.get_bitmap(render=True).to_pil().convert("RGB")
        except Exception:
            continue
        left, bottom, right, top = obj.get_bounds()
        nearby = textpage.get_text_bounded(left - 36, bottom - 72, right + 36, top + 36).strip()
        caption = " ".join((nearby or page_text[:500]).split())
        index = len(figures)
        figures.append(
            Item(kind="image", locator=f"page:{number}:figure:{index}", text=caption, image=image, page=number)
        )
    return figures


def _item_digest(item: Item) -> str:
    digest = hashlib.sha256(item.kind.encode() + item.locator.encode() + item.text.encode())
    if item.image is not None:
        digest.update(item.image.tobytes())
    return digest.hexdigest()
