"""The chat's pieces that outlive one question, and what one answered question keeps for the page.

The page keeps one Weaviate client, one pair of embedders and one generator (st.cache_resource) and builds a cheap
`RagChain` over them for each question, like `rag_app.service.open_chain` does for a command. Nothing here imports
Streamlit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexer.store import Store
from rag_app.chain import RagChain
from rag_app.sources import Source, SourceImages

if TYPE_CHECKING:
    import weaviate
    from PIL import Image

    from indexer.embedders import ClipEmbedder, TextEmbedder
    from mmrag.settings import Settings
    from rag_app.generator import Answerer

VISUAL_KINDS = ("image", "page")
_MARKDOWN = re.compile(r"[\\`*_\[\]<>#|~$]")


@dataclass(frozen=True)
class Embedders:
    clip: ClipEmbedder
    text: TextEmbedder


@dataclass(frozen=True)
class Cited:
    """A numbered source as the page shows it: the source and its stored thumbnail (JPEG bytes), if it has one."""

    source: Source
    thumbnail: bytes | None = None

    @property
    def location(self) -> str:
        """Path and page as the CLI shows them: `report.pdf p.2`, `charts/q4.png`, `notes.md: market_share.png`."""
        return self.source.label or self.source.source_path


@dataclass
class Turn:
    """One question and what came back; kept in the session so the history survives reruns."""

    question: str
    collection: str
    answer: str = ""
    abstained: bool = False
    retrieval_only: bool = False
    cited: list[Cited] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def build_chain(
    settings: Settings, client: weaviate.WeaviateClient, embedders: Embedders, generator: Answerer | None
) -> RagChain:
    """A chain on the page's long-lived client, embedders and generator (None: retrieval only)."""
    from rag_app.service import build_chain as build

    return build(settings, client, embedders.clip, embedders.text, generator)


def cite(images: SourceImages, sources: list[Source]) -> list[Cited]:
    """The sources with the thumbnails of the visual ones, fetched once so the history never asks Weaviate again."""
    return [Cited(s, images.thumbnail_bytes(s.id) if s.kind in VISUAL_KINDS else None) for s in sources]


def full_image(client: weaviate.WeaviateClient, collection: str, source: Source) -> Image.Image | None:
    """The largest view of a visual source still available: the image file, the re-rendered page, or the thumbnail."""
    meta: dict[str, Any] = {
        "id": source.id,
        "kind": source.kind,
        "image_path": source.image_path,
        "source_path": source.source_path,
        "page": source.page,
    }
    return SourceImages(Store(client, collection)).load(meta)


def escape(text: str) -> str:
    """Text shown as itself in Markdown (file names with * or _, snippets with # or [)."""
    return _MARKDOWN.sub(r"\\\g<0>", text)


def escape_answer(text: str) -> str:
    """An answer in Markdown, keeping its formatting but not reading dollar amounts as LaTeX."""
    return text.replace("$", "\\$")


def snippet(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
