"""What every reader of files shares: the extraction options and time budget, the PDFium lock, image decoding within
bounds, a PDF page's text and image, text chunking, and the one-line reason of a failure.

A leaf module (it imports no reader), so extract.py and the format readers it calls (office.py, convert.py, ocr.py)
all import it without importing each other.
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from struct import error as struct_error
from typing import IO, TYPE_CHECKING, Any

from PIL import Image, ImageOps

from mmrag.core.errors import error_text, one_line
from mmrag.core.filetypes import SVG_SUFFIXES
from mmrag.indexer.items import BadFileError, check_aspect

if TYPE_CHECKING:
    from mmrag.core.settings import Settings

PDFIUM_LOCK = threading.Lock()
"""PDFium is not thread-safe: every use of pypdfium2 in this process holds this lock."""


@dataclass(frozen=True)
class ExtractOptions:
    chunk_size: int = 1000
    """Characters per text chunk."""
    chunk_overlap: int = 150
    max_pixels: int = 64_000_000
    """Larger images are refused as possible decompression bombs."""
    max_aspect_ratio: float = 50.0
    """Images longer than this many times their width (or the reverse) are refused: CLIP's resize would
    blow them up (a 1x100000 image becomes 224x22,400,000 pixels)."""
    keep_long_side: int = 1536
    """Decoded images are shrunk to at most this on their long side (CLIP takes 224-448 px, the VLM ~1.5k)."""
    page_long_side: int = 1024
    """Rendered PDF pages are this many pixels on their long side."""
    figures: bool = True
    """Find figures (vector and raster charts) and tables on PDF pages; off, a PDF gives pages and text only."""
    figure_long_side: int = 2048
    """Figure crops are rendered at twice the page render's scale (or more), at most this on their long side."""
    max_pdf_pages: int = 2000
    """Pages read per PDF."""
    max_page_objects: int = 20_000
    """Page objects scanned for figures per page."""
    max_nesting: int = 64
    """Deepest nesting of JSON, HTML/Markdown elements and folders."""
    max_text_bytes: int = 2 * 2**20
    """Text read per file (a text file, or a PDF page)."""
    timeout_s: float = 300.0
    """Time one file (or one part of a long PDF) may take to extract."""
    roots: tuple[Path, ...] = ()
    """Folders that links and symlinks may point into (the indexed ones, plus any extra allowed ones)."""
    office_pages: bool = True
    """Render page images of Office files with LibreOffice (when the `soffice` program is there)."""
    soffice: str = "soffice"
    """The LibreOffice program: a name on PATH or a path."""
    ocr: bool = True
    """OCR PDF pages without a text layer (when the `tesseract` program is there)."""
    ocr_images: bool = False
    """OCR image files too (scanned pages saved as images)."""
    ocr_language: str = "eng"
    tesseract: str = "tesseract"
    """The Tesseract program: a name on PATH or a path."""
    max_unzipped_bytes: int = 512 * 2**20
    """Uncompressed size an Office file (a zip) may unpack to."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ExtractOptions:
        return cls(
            max_pixels=int(settings.max_image_megapixels * 1_000_000),
            max_aspect_ratio=settings.max_aspect_ratio,
            figures=settings.pdf_figures,
            max_pdf_pages=settings.max_pdf_pages,
            max_page_objects=settings.max_page_objects,
            max_nesting=settings.max_nesting,
            max_text_bytes=int(settings.max_text_mb * 2**20),
            timeout_s=settings.file_timeout_s,
            roots=settings.extra_root_paths(),
            office_pages=settings.office_pages,
            soffice=settings.libreoffice,
            ocr=settings.ocr,
            ocr_images=settings.ocr_images,
            ocr_language=settings.ocr_language,
            tesseract=settings.tesseract,
            max_unzipped_bytes=int(settings.max_unzipped_mb * 2**20),
        )


class TimeLimitError(BadFileError):
    """The file's time budget is spent: the whole file fails, not just the page being read."""


class Deadline:
    """The time budget of one extraction: `check()` raises once it is spent (checked between pages, objects...)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeLimitError(f"took longer than {self.seconds:g} s to read (MMRAG_FILE_TIMEOUT_S)")

    def left(self) -> float:
        """Seconds left (negative once spent)."""
        return self.end - time.monotonic()


def failure_reason(error: BaseException) -> str:
    """One line for the user saying why a file could not be indexed."""
    if isinstance(error, BadFileError):
        return str(error)
    if isinstance(error, PermissionError):
        return "permission denied"
    if isinstance(error, OSError):
        return f"cannot read: {error.strerror or error}"
    if isinstance(error, RecursionError):
        return "nested too deeply to read"
    if isinstance(error, MemoryError):
        return "out of memory while reading it"
    return f"unreadable ({error_text(error)})"


def load_image(
    path: Path | IO[bytes], max_pixels: int, max_aspect_ratio: float | None = None, long_side: int | None = None
) -> Image.Image:
    """An RGB image (first frame of animations, EXIF orientation applied, transparency on white), refused when
    larger than `max_pixels` or more elongated than `max_aspect_ratio`, shrunk to `long_side` when given. An SVG
    file is drawn (indexer/svg.py), within the same bounds; `path` may also be an open binary file of a raster
    image (a picture inside an Office file)."""
    if isinstance(path, Path) and path.suffix.lower() in SVG_SUFFIXES:
        from mmrag.indexer.svg import load_svg

        return load_svg(path, max_pixels, max_aspect_ratio, long_side).image
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # PIL's notes on corrupt EXIF: not the user's business
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise BadFileError(f"image too large ({width}x{height} pixels): possible decompression bomb")
                check_aspect(width, height, max_aspect_ratio)
                img.seek(0)
                if long_side is not None:
                    img.draft("RGB", (long_side, long_side))  # JPEG: decode at a reduced scale
                img.load()
                image = _to_rgb(ImageOps.exif_transpose(img) or img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise BadFileError(f"possible decompression bomb: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise BadFileError("not a readable image (corrupt or unsupported format)") from e
    except (OSError, SyntaxError, ValueError, EOFError, struct_error) as e:
        if isinstance(e, PermissionError):
            raise
        raise BadFileError(f"corrupt or truncated image: {one_line(str(e))}") from e
    if long_side is not None and max(image.size) > long_side:
        image.thumbnail((long_side, long_side), reducing_gap=2.0)
    return image


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("RGBA", "LA", "P", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def page_text(textpage: Any) -> str:
    """The text of a pypdfium2 text page, with Unix line ends. The caller holds the PDFium lock."""
    return str(textpage.get_text_range()).replace("\r\n", "\n").strip()


def page_scale(page: Any, long_side: int) -> float:
    """The scale that draws a pypdfium2 page `long_side` pixels on its long side."""
    width, height = page.get_size()
    return long_side / max(width, height, 1)


def page_image(page: Any, options: ExtractOptions) -> Image.Image:
    """A pypdfium2 page drawn in RGB at options.page_long_side on its long side; BadFileError for a page more
    elongated than options.max_aspect_ratio. The caller holds the PDFium lock."""
    width, height = page.get_size()
    check_aspect(max(round(width), 1), max(round(height), 1), options.max_aspect_ratio)
    return page.render(scale=page_scale(page, options.page_long_side)).to_pil().convert("RGB")


def chunk_text(text: str, options: ExtractOptions) -> list[str]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(chunk_size=options.chunk_size, chunk_overlap=options.chunk_overlap)
    return [c.strip() for c in splitter.split_text(text) if c.strip()]
