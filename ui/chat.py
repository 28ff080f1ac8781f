"""The chat's pieces that outlive one question, and what one answered question keeps for the page.

The page keeps one Weaviate client, one pair of embedders and one generator (st.cache_resource) and builds a cheap
`RagChain` over them for each question, like `rag_app.service.open_chain` does for a command. Nothing here imports
Streamlit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mmrag.rag_app.chain import RagChain
from mmrag.rag_app.followup import Turn, standalone_question
from mmrag.rag_app.sources import Source, SourceImages

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.core.client import Client
    from mmrag.core.settings import Settings
    from mmrag.indexer.embedders import ImageEncoder, TextEncoder
    from mmrag.rag_app.generator import Generator

VISUAL_KINDS = ("image", "page")
_MARKDOWN = re.compile(r"[\\`*_\[\]<>#|~$]")
_CELL_SEPARATOR = re.compile(r"(?<!\\)\|")
_RULE_CELL = re.compile(r"^\s*:?-{3,}:?\s*$")
_UNESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Embedders:
    clip: ImageEncoder
    text: TextEncoder


@dataclass(frozen=True)
class Cited:
    """A numbered source as the page shows it: the source and its stored thumbnail (JPEG bytes), if it has one."""

    source: Source
    thumbnail: bytes | None = None

    @property
    def location(self) -> str:
        """Path, page and label as the CLI shows them: `report.pdf p.4, Figure 2: Revenue by region`,
        `charts/q4.png`, `notes.md: market_share.png`."""
        return self.source.label or self.source.source_path

    @property
    def table(self) -> str | None:
        """A table source's Markdown table, each cell escaped (so a cell shows as text, never as a link or image)."""
        return table_markdown(self.source.text) if self.source.kind == "table" else None


@dataclass
class ChatTurn:
    """One question and what came back; kept in the session so the history survives reruns."""

    question: str
    collection: str
    searched: str | None = None
    """The standalone question retrieved and answered for (a follow-up made standalone), if not `question`."""
    answer: str = ""
    abstained: bool = False
    retrieval_only: bool = False
    cited: list[Cited] = field(default_factory=list)
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def build_chain(settings: Settings, client: Client, embedders: Embedders, generator: Generator | None) -> RagChain:
    """A chain on the page's long-lived client, embedders and generator (None: retrieval only)."""
    from mmrag.rag_app.service import build_chain as build

    return build(settings, client, embedders.clip, embedders.text, generator)


def standalone(question: str, turns: list[ChatTurn], generator: Generator | None, adapter: str | None) -> str:
    """The question made standalone given the chat so far (`rag_app.followup`): rewritten by the generator, or
    joined to the previous question when there is none (retrieval only)."""
    return standalone_question(question, history(turns), generator, adapter=adapter)


def history(turns: list[ChatTurn]) -> list[Turn]:
    """The answered turns as the follow-up rewrite sees them: each as it was searched for (so a follow-up of a
    follow-up keeps the first question's subject), failed turns left out."""
    return [Turn(t.searched or t.question, t.answer) for t in turns if t.error is None]


def cite(images: SourceImages, sources: list[Source]) -> list[Cited]:
    """The sources with the thumbnails of the visual ones, fetched once so the history never asks Weaviate again."""
    return [Cited(s, images.thumbnail_bytes(s.id) if s.kind in VISUAL_KINDS else None) for s in sources]


def full_image(client: Client, collection: str, source: Source) -> Image.Image | None:
    """The largest view of a visual source still available: a figure (or table) highlighted on its re-rendered PDF
    page, else the image file, the re-rendered page, or the thumbnail."""
    from mmrag.rag_app.service import source_images

    images = source_images(client, collection)
    highlighted = images.highlighted(source.metadata())
    return highlighted if highlighted is not None else images.load(source.metadata())


def table_markdown(text: str) -> str | None:
    """The Markdown table in a table's text (its rows start with '|'), with every cell escaped; None if none."""
    rows = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    if len(rows) < 2:
        return None
    return "\n".join(_table_row(row) for row in rows)


def _table_row(row: str) -> str:
    """One row of indexer.tables' Markdown (cells with `\\|`, `\\\\` and `<br>`) with each cell's text escaped."""
    cells = _CELL_SEPARATOR.split(row.removeprefix("|").removesuffix("|"))
    shown = [
        cell.strip() if _RULE_CELL.match(cell) else escape(_UNESCAPE.sub(r"\1", cell).replace("<br>", " ").strip())
        for cell in cells
    ]
    return "| " + " | ".join(shown) + " |"


def escape(text: str) -> str:
    """Text shown as itself in Markdown (file names with * or _, snippets with # or [)."""
    return _MARKDOWN.sub(r"\\\g<0>", text)


def escape_answer(text: str) -> str:
    """An answer in Markdown, keeping its formatting but not reading dollar amounts as LaTeX."""
    return text.replace("$", "\\$")


def snippet(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
