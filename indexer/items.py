"""What extraction produces: the items of one file, each becoming one Weaviate object."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

Kind = Literal["image", "page", "text", "table"]

Box = tuple[float, float, float, float]
"""(x0, top, x1, bottom) in PDF points on the page as displayed (rotation applied), origin at its top-left."""

_NAMESPACE = uuid.UUID("8f3b8a4e-6d0c-5a55-9c1e-6d6d72616701")


@dataclass
class Item:
    """One searchable piece of a file: an image (chart, figure, photo), a rendered PDF page, a text chunk, or a
    table (its Markdown as text)."""

    kind: Kind
    locator: str
    """Unique within the file: 'image', 'page:3', 'page:3:figure:1', 'page:3:table:0', 'chunk:7', 'figure:2'."""
    text: str = ""
    """What BM25 and the text embedder read: the chunk; for a figure its caption, the words inside it (titles, axis
    labels, legends) and the document's sentences that refer to it; for a table its caption and Markdown."""
    image: Image.Image | None = None
    page: int | None = None
    chunk: int | None = None
    image_path: str | None = None
    """Where the image itself lives on disk, when it is a file of its own."""
    content_sha256: str = ""
    thumbnail: str | None = None
    """A small JPEG of the image (base64), for the UI: made at extraction, off the encoder's thread."""
    pixels: Any = None
    """The image as the image encoder's `prepare` made it (CLIP: its input tensor), when extraction ran in a
    thread that could prepare it."""
    size: tuple[int, int] | None = None
    """(width, height) of the image, kept when the pixels are dropped after preprocessing."""
    label: str | None = None
    """The figure's or table's label as printed: 'Figure 2', 'Fig. 3.1', 'Table 1' (None: unlabelled)."""
    caption: str | None = None
    """The caption paragraph (label included), or for an unlabelled figure the text next to it."""
    bbox: Box | None = None
    """Where a figure or table sits on its PDF page."""
    origin: str | None = None
    """How the text was obtained when not read from the file's text: 'ocr' (Tesseract read it from the pixels),
    'chart-data' (a native Office chart: its text is the chart's own data, its image drawn from that data)."""
    shape: str | None = None
    """Where in an Office file it comes from, beside its page/slide number: the shape's or chart's name, and for
    a workbook the sheet ('Sheet "Sales": Chart 1')."""

    @property
    def visual(self) -> bool:
        """An image or page (CLIP embeds its pixels), as opposed to a text chunk."""
        return self.image is not None or self.pixels is not None


@dataclass
class FileResult:
    """Extraction of one file: its items, or the reason it could not be read."""

    path: Path
    sha256: str
    size: int
    mtime: float
    items: list[Item] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    """What was left out of an indexed file (a bad page, a refused link, text past the limit), one line each."""
    notes: list[str] = field(default_factory=list)
    """What an optional program would have added (page images need LibreOffice, pages with no text layer need
    Tesseract), one line each: shown in the summary, not warnings (`--strict` does not fail on them)."""
    pages: tuple[int, int] | None = None
    """For a long PDF read in parts: the pages [first, stop) of this part (1-based)."""
    final: bool = True
    """The last (or only) part of its file."""
    seconds: float = 0.0


def display_path(path: Path | str) -> str:
    """A path as stored and shown: exact for UTF-8 names; other bytes as \\xNN escapes (stable, displayable)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def object_id(source_path: str, file_sha256: str, locator: str) -> str:
    """Deterministic: the same file content at the same path always gives the same ids."""
    return str(uuid.uuid5(_NAMESPACE, f"{source_path}\x00{file_sha256}\x00{locator}"))


class BadFileError(Exception):
    """The file cannot be indexed; the message is the reason shown to the user."""


def check_aspect(width: int, height: int, max_aspect_ratio: float | None) -> None:
    if max_aspect_ratio is None:
        return
    if min(width, height) < 1 or max(width, height) / min(width, height) > max_aspect_ratio:
        raise BadFileError(
            f"image of {width}x{height} pixels is more elongated than 1:{max_aspect_ratio:g} (MMRAG_MAX_ASPECT_RATIO)"
        )
