"""A LangChain retriever over an indexed collection: images, pages and text chunks as Documents."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from mmrag.rag_app.search import Hit, Mode, Searcher, SearchFilters


class MultimodalRetriever(BaseRetriever):
    """Retrieves the k most relevant charts, pages and passages for a question.

    Each Document's page_content is the chunk text, the image caption or the table; metadata holds id, kind, source,
    source_path, page, chunk, score (fused), the raw similarities (text_similarity, clip_similarity, bm25; None for
    a signal that did not find it), `image_path` (the image on disk, when it is a file), and for a figure or table
    its `label` ("Figure 2"), `caption` and `bbox` on its PDF page. `k`, `mode`, `kinds` and `source_prefix` can be
    overridden per call: ``retriever.invoke("question", k=8, kinds=["image"])``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    searcher: Searcher
    k: int = Field(4, ge=1, le=100)
    mode: Mode = "hybrid"
    kinds: tuple[str, ...] = ()
    source_prefix: str | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        filters = SearchFilters(
            kinds=tuple(kwargs.get("kinds", self.kinds) or ()),
            source_prefix=kwargs.get("source_prefix", self.source_prefix),
        )
        hits = self.searcher.search(
            query, k=int(kwargs.get("k", self.k)), mode=kwargs.get("mode", self.mode), filters=filters
        )
        return [to_document(hit) for hit in hits]


def to_document(hit: Hit) -> Document:
    p = hit.properties
    metadata = {
        "id": hit.id,
        "kind": p.get("kind"),
        "source": p.get("source"),
        "source_path": p.get("source_path"),
        "page": p.get("page"),
        "chunk": p.get("chunk"),
        "image_path": p.get("image_path"),
        "label": p.get("label"),
        "caption": p.get("caption"),
        "bbox": p.get("bbox"),
        "score": hit.score,
        "text_similarity": hit.text_similarity,
        "clip_similarity": hit.clip_similarity,
        "bm25": hit.bm25,
    }
    return Document(page_content=str(p.get("text") or ""), metadata=metadata, id=hit.id)
