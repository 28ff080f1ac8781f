"""A LangChain retriever over an indexed collection: images, pages and text chunks as Documents."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from mmrag.rag_app.search import MAX_K, Mode, Ranked, Searcher, SearchOptions

_LANGCHAIN_KWARGS = ("verbose",)
"""Keywords of `BaseRetriever.invoke` itself, which it also passes on."""


class MultimodalRetriever(BaseRetriever):
    """Retrieves the k most relevant charts, pages and passages for a question: `Searcher.search` as a LangChain
    retriever.

    Each Document's page_content is the chunk text, the image caption or the table; metadata holds id, kind, source,
    source_path, page, chunk, score (fused), the raw similarities (text_similarity, clip_similarity, bm25; None for
    a signal that did not find it), `image_path` (the image on disk, when it is a file), and for a figure or table
    its `label` ("Figure 2"), `caption` and `bbox` on its PDF page. Any field of `SearchOptions` (`k`, `mode`,
    `kinds`, `source_prefix`) can be overridden per call: ``retriever.invoke("question", k=8, kinds=["image"])``;
    any other keyword is an UnknownOptionError (a TypeError), never silently ignored.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    k: int = Field(4, ge=1, le=MAX_K)
    mode: Mode = "hybrid"
    kinds: tuple[str, ...] = ()
    source_prefix: str | None = None

    @property
    def options(self) -> SearchOptions:
        """The options of a call that overrides none."""
        return SearchOptions(k=self.k, mode=self.mode, kinds=self.kinds, source_prefix=self.source_prefix)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        for name in _LANGCHAIN_KWARGS:
            overrides.pop(name, None)
        return [to_document(ranked) for ranked in self.searcher.search(query, self.options.replace(**overrides))]


def to_document(ranked: Ranked) -> Document:
    hit = ranked.hit
    metadata = {
        "id": hit.id,
        "kind": hit.kind,
        "source": hit.source,
        "source_path": hit.source_path,
        "page": hit.page,
        "chunk": hit.chunk,
        "image_path": hit.image_path,
        "label": hit.label,
        "caption": hit.caption,
        "bbox": list(hit.bbox) if hit.bbox is not None else None,
        "origin": hit.origin,
        "shape": hit.shape,
        "score": ranked.score,
        "text_similarity": ranked.text_similarity,
        "clip_similarity": ranked.clip_similarity,
        "bm25": ranked.bm25,
    }
    return Document(page_content=hit.text, metadata=metadata, id=hit.id)
