"""Numbered sources of an answer, and their pixels: the image file, a figure's crop or a page re-rendered from its
PDF, or the stored thumbnail.

A source says where it came from: its file, page, figure or table label and caption, and box on the page
(`Source.label` reads "report.pdf p.4, Figure 2: Revenue by region").
"""

from __future__ import annotations

import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from PIL import Image, ImageDraw

from mmrag.core.errors import MmragError
from mmrag.core.filetypes import PDF_SUFFIXES
from mmrag.core.prompts import ContextItem
from mmrag.indexer.captions import LABEL
from mmrag.indexer.extract import PDFIUM_LOCK, BadFileError, load_image
from mmrag.indexer.items import Box
from mmrag.indexer.store import Store

_MAX_PIXELS = 64_000_000
CROP_PAD = 3.0
"""Points of the page kept around a figure's box in its crop (as extraction's crop keeps): its outermost marks stay
whole."""
_MAX_CROP_SCALE = 32.0
"""A crop is rendered at most at 32x (2304 dpi), however small its box."""
_HIGHLIGHT = (230, 40, 40)
_SNIPPET = 500
_SENTENCE = re.compile(r"(?<=[.!?;])\s")


class NoImageError(MmragError):
    """The object has no pixels to show (a text chunk of a text file)."""


@dataclass(frozen=True)
class Source:
    """One numbered source: what the answer's [n] markers refer to, and where it is in its file."""

    n: int
    """Its rank among the sources of a search or an answer: 1 is the best."""
    id: str
    kind: str
    source: str
    source_path: str
    page: int | None
    score: float
    text: str
    image_path: str | None = None
    figure_label: str | None = None
    """The figure's or table's label as printed ('Figure 2', 'Table 1')."""
    caption: str | None = None
    bbox: Box | None = None
    """(x0, top, x1, bottom) in points on the PDF page as displayed, origin top-left."""
    shape: str | None = None
    """Where in an Office file: the shape or chart name ('Chart 2', 'Sheet "Sales": Chart 1')."""
    origin: str | None = None
    """'ocr' (text Tesseract read from a scan), 'chart-data' (a native Office chart, drawn from its data)."""
    text_similarity: float | None = None
    clip_similarity: float | None = None
    bm25: float | None = None

    @classmethod
    def from_document(cls, n: int, document: Document) -> Source:
        meta = document.metadata
        return cls(
            n=n,
            id=str(meta["id"]),
            kind=str(meta["kind"]),
            source=str(meta.get("source") or ""),
            source_path=str(meta.get("source_path") or ""),
            page=meta.get("page"),
            score=float(meta.get("score") or 0.0),
            text=document.page_content,
            image_path=meta.get("image_path"),
            figure_label=meta.get("label") or None,
            caption=meta.get("caption") or None,
            bbox=box_of(meta.get("bbox")),
            shape=meta.get("shape") or None,
            origin=meta.get("origin") or None,
            text_similarity=meta.get("text_similarity"),
            clip_similarity=meta.get("clip_similarity"),
            bm25=meta.get("bm25"),
        )

    @property
    def path(self) -> str:
        """The file as shown: relative to the current folder when it is under it, else absolute (`source`, relative
        to whichever folder was indexed, can name two files alike)."""
        return shown_path(self.source_path) if self.source_path else self.source

    @property
    def label(self) -> str:
        """`report.pdf p.4, Figure 2: Revenue by region`, `report.pdf p.3, Table 1: Headcount`, `report.pdf p.2`,
        `deck.pptx slide 3, Chart 2`, `charts/q4.png`, or `notes.md: market_share.png` for an unlabelled figure
        shown by a document (the file as `path` shows it)."""
        return self.named(self.path)

    @property
    def prompt_label(self) -> str:
        """The label the VLM reads: the file named relative to the folder that was indexed (`source`), so a prompt
        (and its answer) is the same whatever the current folder, and shows no absolute path."""
        return self.named(self.source or self.path)

    def named(self, name: str) -> str:
        """The label with the file called `name`."""
        page = "slide " if name.lower().endswith(".pptx") else "p."
        where = f"{name} {page}{self.page}" if self.page else name
        if self.figure_label:
            return f"{where}, {titled(self.figure_label, self.caption)}"
        if self.shape and self.kind in ("image", "table"):
            return f"{where}, {self.shape}"
        if self.bbox is not None and self.kind in ("image", "table"):
            return f"{where}, {'table' if self.kind == 'table' else 'figure'}"
        if self.page:
            return where
        if self.kind == "image" and self.image_path and not name.endswith(Path(self.image_path).name):
            return f"{name}: {Path(self.image_path).name}"
        return name

    @property
    def image(self) -> str | None:
        """Where its pixels are: the image file, or for a PDF figure, table or page the command that writes them."""
        if self.image_path:
            return self.image_path
        if self.kind in ("image", "page") or self.bbox is not None:
            return f"mmrag crop {self.id} -o {shlex.quote(self.picture_name)}"
        return None

    @property
    def picture_name(self) -> str:
        """A file name for its picture: `report_p4_figure-2.png`."""
        stem = re.sub(r"[^\w.-]+", "_", Path(self.source).stem).strip("_")[:60] or "source"
        what = re.sub(r"[^\w]+", "-", self.figure_label or self.kind).strip("-").lower()
        return f"{stem}_p{self.page}_{what}.png" if self.page else f"{stem}_{what}.png"

    def metadata(self) -> dict[str, Any]:
        """What `SourceImages` needs to find its pixels."""
        return {
            "id": self.id,
            "kind": self.kind,
            "image_path": self.image_path,
            "source_path": self.source_path,
            "page": self.page,
            "bbox": list(self.bbox) if self.bbox is not None else None,
        }

    def context_item(self, as_image: bool) -> ContextItem:
        """How the prompt shows this source: with its pixels (an image/page) or as text (chunks, tables, extra
        captions)."""
        if as_image:
            return ContextItem(
                n=self.n,
                kind="page" if self.kind == "page" else "image",
                label=self.prompt_label,
                text=self.text if self.kind == "image" else "",
            )
        prefix = "caption of an image: " if self.kind == "image" else ""
        return ContextItem(n=self.n, kind="text", label=self.prompt_label, text=prefix + self.text)

    def as_json(self) -> dict[str, Any]:
        """Everything a reader needs to check the source: where it is, what it says, how to see it, why it ranked."""
        return {
            "n": self.n,
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "source_path": self.source_path,
            "path": self.path,
            "page": self.page,
            "label": self.label,
            "figure_label": self.figure_label,
            "caption": self.caption,
            "text": snippet(self.text, _SNIPPET),
            "image": self.image,
            "bbox": [round(v, 1) for v in self.bbox] if self.bbox is not None else None,
            "shape": self.shape,
            "origin": self.origin,
            "score": round(self.score, 6),
            "text_similarity": _rounded(self.text_similarity),
            "clip_similarity": _rounded(self.clip_similarity),
            "bm25": _rounded(self.bm25),
        }


def shown_path(source_path: str) -> str:
    """An absolute path as shown: relative to the current folder when under it, else as it is."""
    try:
        return Path(source_path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return source_path


def titled(label: str, caption: str | None, limit: int = 60) -> str:
    """`Figure 2: Revenue by region`: the label, then the caption's first sentence (shortened, without its own
    label); a caption that starts with its label in a sentence ('Figure 2 shows...') is shown as it is."""
    text = " ".join((caption or "").split())
    match = LABEL.match(text)
    if match is not None and " ".join(match.group("label").split()).casefold() == label.casefold():
        if not match.group("sep").strip() and text[match.end() :][:1].islower():
            return snippet(_SENTENCE.split(text, maxsplit=1)[0].rstrip("."), limit + len(label))
        text = text[match.end() :].strip()
    title = snippet(_SENTENCE.split(text, maxsplit=1)[0].rstrip(".;"), limit) if text else ""
    return f"{label}: {title}" if title else label


def snippet(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    cut = flat[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"


def box_of(value: Any) -> Box | None:
    """A stored box (a list of four numbers) as a tuple; anything else is None."""
    if not isinstance(value, list | tuple) or len(value) != 4:
        return None
    try:
        x0, top, x1, bottom = (float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return (x0, top, x1, bottom)


def _rounded(value: float | None) -> float | None:
    return round(float(value), 6) if value is not None else None


class SourceImages:
    """Pixels of retrieved objects, from the best place still available."""

    def __init__(self, store: Store, page_long_side: int = 1024, crop_long_side: int = 1536) -> None:
        self.store = store
        self.page_long_side = page_long_side
        self.crop_long_side = crop_long_side
        """A figure's crop is rendered this long on its long side (and at least at twice the page's scale)."""

    def load(self, meta: dict[str, Any]) -> Image.Image | None:
        """The object's image file; else for an object with a box on a PDF page (a figure, a table) its crop, for
        a page (or a text chunk of a PDF) the page, rendered from the PDF; else the stored thumbnail."""
        image_path = meta.get("image_path")
        if image_path and Path(image_path).is_file():
            try:
                return load_image(Path(image_path), _MAX_PIXELS)
            except (BadFileError, OSError):
                pass
        pdf, number, box = _on_pdf_page(meta)
        if pdf is not None and number is not None:
            if box is not None:
                crop = self._render(pdf, number, crop=box)
                if crop is not None:
                    return crop
            elif meta.get("kind") != "image":
                page = self._render(pdf, number)
                if page is not None:
                    return page
        return self.thumbnail(str(meta["id"]))

    def highlighted(self, meta: dict[str, Any]) -> Image.Image | None:
        """The PDF page of an object with a box (a figure, a table), its box drawn on it; None for other objects
        or when the PDF cannot be read."""
        pdf, number, box = _on_pdf_page(meta)
        if pdf is None or number is None or box is None:
            return None
        return self._render(pdf, number, highlight=box)

    def thumbnail(self, object_id: str) -> Image.Image | None:
        data = self.thumbnail_bytes(object_id)
        return Image.open(io.BytesIO(data)).convert("RGB") if data else None

    def thumbnail_bytes(self, object_id: str) -> bytes | None:
        return self.store.thumbnail(object_id)

    def _render(self, path: Path, number: int, crop: Box | None = None, highlight: Box | None = None) -> Any:
        with PDFIUM_LOCK:
            return self._render_locked(path, number, crop, highlight)

    def _render_locked(self, path: Path, number: int, crop: Box | None, highlight: Box | None) -> Any:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            return None
        try:
            if not 1 <= number <= len(pdf):
                return None
            page = pdf[number - 1]
            width, height = page.get_size()  # as displayed: /Rotate applied
            page_scale = self.page_long_side / max(width, height, 1)
            if crop is not None:
                return self._crop(page, crop, width, height, page_scale)
            image = page.render(scale=page_scale).to_pil().convert("RGB")
            if highlight is not None:
                _draw_box(image, highlight, page_scale)
            return image
        except (pdfium.PdfiumError, ValueError, OSError, MemoryError):
            return None
        finally:
            pdf.close()

    def _crop(self, page: Any, box: Box, width: float, height: float, page_scale: float) -> Image.Image | None:
        x0, top = max(box[0] - CROP_PAD, 0.0), max(box[1] - CROP_PAD, 0.0)
        x1, bottom = min(box[2] + CROP_PAD, width), min(box[3] + CROP_PAD, height)
        if x1 - x0 < 1 or bottom - top < 1:
            return None
        scale = max(self.crop_long_side / max(x1 - x0, bottom - top), 2 * page_scale)
        scale = min(scale, _MAX_CROP_SCALE)
        # pdfium's crop: the amounts cut off (left, bottom, right, top) of the page as displayed, in points
        bitmap = page.render(scale=scale, crop=(x0, height - bottom, width - x1, top))
        return bitmap.to_pil().convert("RGB")


def _on_pdf_page(meta: dict[str, Any]) -> tuple[Path | None, int | None, Box | None]:
    """The readable PDF, page number and box of an object, where it has them."""
    source_path = Path(str(meta.get("source_path") or ""))
    page = meta.get("page")
    if source_path.suffix.lower() not in PDF_SUFFIXES or not page or not source_path.is_file():
        return None, None, None
    return source_path, int(page), box_of(meta.get("bbox"))


def _draw_box(image: Image.Image, box: Box, scale: float) -> None:
    line = max(2, round(max(image.size) / 300))
    x0, top, x1, bottom = (v * scale for v in box)
    pad = line + 2
    ImageDraw.Draw(image).rectangle((x0 - pad, top - pad, x1 + pad, bottom + pad), outline=_HIGHLIGHT, width=line)
