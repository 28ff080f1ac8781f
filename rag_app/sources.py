"""Numbered sources of an answer, and their pixels: the image file, the PDF page re-rendered, or the thumbnail."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.documents import Document
from PIL import Image

from indexer.extract import PDFIUM_LOCK, BadFileError, load_image
from indexer.store import Store
from rag_app.prompts import ContextItem

_MAX_PIXELS = 64_000_000


@dataclass(frozen=True)
class Source:
    """One numbered source: what the answer's [n] markers refer to."""

    n: int
    id: str
    kind: str
    source: str
    source_path: str
    page: int | None
    score: float
    text: str
    image_path: str | None = None

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
        )

    @property
    def label(self) -> str:
        """`report.pdf p.2`, `charts/q4.png`, or `notes.md: market_share.png` for a figure shown by a document."""
        if self.page:
            return f"{self.source} p.{self.page}"
        if self.kind == "image" and self.image_path and not self.source.endswith(Path(self.image_path).name):
            return f"{self.source}: {Path(self.image_path).name}"
        return self.source

    def context_item(self, as_image: bool) -> ContextItem:
        """How the prompt shows this source: with its pixels (an image/page) or as text (chunks, extra captions)."""
        if as_image:
            return ContextItem(
                n=self.n,
                kind="page" if self.kind == "page" else "image",
                label=self.label,
                text=self.text if self.kind == "image" else "",
            )
        prefix = "caption of an image: " if self.kind == "image" else ""
        return ContextItem(n=self.n, kind="text", label=self.label, text=prefix + self.text)

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "id": self.id,
            "kind": self.kind,
            "source": self.source,
            "page": self.page,
            "score": round(self.score, 6),
        }


class SourceImages:
    """Pixels of retrieved images and pages, from the best place still available."""

    def __init__(self, store: Store, page_long_side: int = 1024) -> None:
        self.store = store
        self.page_long_side = page_long_side

    def load(self, meta: dict[str, Any]) -> Image.Image | None:
        image_path = meta.get("image_path")
        if image_path and Path(image_path).is_file():
            try:
                return load_image(Path(image_path), _MAX_PIXELS)
            except (BadFileError, OSError):
                pass
        source_path = meta.get("source_path") or ""
        if meta.get("kind") == "page" and meta.get("page") and Path(source_path).is_file():
            page = self._render_page(Path(source_path), int(meta["page"]))
            if page is not None:
                return page
        return self.thumbnail(str(meta["id"]))

    def thumbnail(self, object_id: str) -> Image.Image | None:
        data = self.thumbnail_bytes(object_id)
        return Image.open(io.BytesIO(data)).convert("RGB") if data else None

    def thumbnail_bytes(self, object_id: str) -> bytes | None:
        obj = self.store.call(
            lambda: self.store.collection.query.fetch_object_by_id(object_id, return_properties=["thumbnail"])
        )
        encoded = obj.properties.get("thumbnail") if obj is not None else None
        return base64.b64decode(encoded) if encoded else None

    def _render_page(self, path: Path, number: int) -> Image.Image | None:
        with PDFIUM_LOCK:
            return self._render_page_locked(path, number)

    def _render_page_locked(self, path: Path, number: int) -> Image.Image | None:
        import pypdfium2 as pdfium

        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            return None
        try:
            if not 1 <= number <= len(pdf):
                return None
            page = pdf[number - 1]
            scale = self.page_long_side / max(*page.get_size(), 1)
            return page.render(scale=scale).to_pil().convert("RGB")
        finally:
            pdf.close()
