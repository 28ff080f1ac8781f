"""Search over an indexed collection: three signals, fused by reciprocal rank.

Signals: BM25 over text and captions; the text embedder's vector (`text`); CLIP's vector (`clip`: the question
embedded by CLIP's text tower against image, page and chunk vectors). Modes: `text` = BM25 + text vector,
`image` = CLIP over images and pages, `hybrid` (default) = all three.

Why reciprocal-rank fusion (RRF, k=60) rather than relative-score fusion: the three scores live on unrelated scales
(unbounded BM25, cosine similarities of two different models whose typical ranges differ), and RRF needs no
calibration per model, so swapping CLIP or the text embedder never needs re-tuning. Weaviate's own hybrid query fuses
one vector with BM25 only. The raw cosine similarities are kept on each hit for the relevance threshold (abstention).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from weaviate.classes.query import Filter, MetadataQuery

from mmrag.core.errors import ConfigError
from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder
from mmrag.indexer.items import Kind
from mmrag.indexer.store import CLIP_VECTOR, TEXT_VECTOR, Store

Mode = Literal["image", "text", "hybrid"]
MODES: tuple[Mode, ...] = ("image", "text", "hybrid")
KINDS: tuple[str, ...] = get_args(Kind)
RRF_K = 60
_RETURN = ["kind", "source", "source_path", "page", "chunk", "text", "image_path", "width", "height"]
_PROVENANCE = ["label", "caption", "bbox"]
"""A figure's or table's label, caption and box on its page."""
_VISUAL = ("image", "page")


@dataclass
class Hit:
    """One retrieved object with its fused score and each signal's raw similarity."""

    id: str
    properties: dict[str, Any]
    score: float = 0.0
    text_similarity: float | None = None
    clip_similarity: float | None = None
    bm25: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchFilters:
    kinds: tuple[str, ...] = ()
    """Only objects of these kinds (image, page, text, table); none: all."""
    source_prefix: str | None = None

    def __post_init__(self) -> None:
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ConfigError(f"unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}")

    def where(self, restrict_kinds: Sequence[str] = ()) -> Any:
        clauses = []
        kinds = (
            [k for k in self.kinds if not restrict_kinds or k in restrict_kinds] if self.kinds else list(restrict_kinds)
        )
        if self.kinds and restrict_kinds and not kinds:
            kinds = ["__none__"]
        if kinds:
            clauses.append(Filter.by_property("kind").contains_any(kinds))
        if self.source_prefix:
            prop = "source_path" if self.source_prefix.startswith("/") else "source"
            clauses.append(Filter.by_property(prop).like(self.source_prefix.rstrip("*") + "*"))
        if not clauses:
            return None
        return Filter.all_of(clauses) if len(clauses) > 1 else clauses[0]


class Searcher:
    """Embeds the query once per signal and asks Weaviate; cheap to build, models load on first search."""

    def __init__(self, store: Store, clip: ClipEmbedder, text: TextEmbedder, candidates: int = 20) -> None:
        self.store = store
        self.clip = clip
        self.text = text
        self.candidates = candidates
        self.last_timings: dict[str, float] = {}
        self._pool: ThreadPoolExecutor | None = None

    def search(self, query: str, k: int = 4, mode: Mode = "hybrid", filters: SearchFilters | None = None) -> list[Hit]:
        if mode not in MODES:
            raise ConfigError(f"unknown retrieval mode {mode!r}: choose one of {', '.join(MODES)}")
        filters = filters or SearchFilters()
        limit = max(k, self.candidates)
        started = time.perf_counter()
        text_vector = self.text.embed([query])[0].tolist() if mode in ("text", "hybrid") else None
        clip_vector = self.clip.embed_texts([query])[0].tolist() if mode in ("image", "hybrid") else None
        embedded = time.perf_counter()
        # The (up to three) Weaviate queries run concurrently: latency is the slowest one, not their sum.
        futures: dict[str, Future[list[Hit]]] = {}
        pool = self._executor()
        if text_vector is not None:
            futures["text"] = pool.submit(
                self._near, text_vector, TEXT_VECTOR, limit, filters.where(), "text_similarity"
            )
            futures["bm25"] = pool.submit(self._bm25, query, limit, filters.where())
        if clip_vector is not None:
            restrict = _VISUAL if mode == "image" else ()
            futures["clip"] = pool.submit(
                self._near, clip_vector, CLIP_VECTOR, limit, filters.where(restrict), "clip_similarity"
            )
        fused = fuse({name: future.result() for name, future in futures.items()})[:k]
        self.last_timings = {"embed_s": embedded - started, "search_s": time.perf_counter() - embedded}
        return fused

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="mmrag-search")
        return self._pool

    def _near(self, vector: list[float], target: str, limit: int, where: Any, similarity: str) -> list[Hit]:
        result = self.store.call(
            lambda: self.store.collection.query.near_vector(
                vector,
                target_vector=target,
                limit=limit,
                filters=where,
                return_properties=_RETURN + _PROVENANCE,
                return_metadata=MetadataQuery(distance=True),
            )
        )
        hits = []
        for obj in result.objects:
            hit = Hit(id=str(obj.uuid), properties=dict(obj.properties))
            setattr(hit, similarity, 1.0 - float(obj.metadata.distance or 0.0))
            hits.append(hit)
        return hits

    def _bm25(self, query: str, limit: int, where: Any) -> list[Hit]:
        result = self.store.call(
            lambda: self.store.collection.query.bm25(
                query,
                query_properties=["text"],
                limit=limit,
                filters=where,
                return_properties=_RETURN + _PROVENANCE,
                return_metadata=MetadataQuery(score=True),
            )
        )
        return [
            Hit(id=str(o.uuid), properties=dict(o.properties), bm25=float(o.metadata.score or 0.0))
            for o in result.objects
        ]


def fuse(lists: dict[str, list[Hit]], k: int = RRF_K) -> list[Hit]:
    """Reciprocal-rank fusion: score = sum over lists of 1 / (k + rank); raw similarities are merged per id."""
    merged: dict[str, Hit] = {}
    for name, hits in lists.items():
        for rank, hit in enumerate(hits, start=1):
            into = merged.setdefault(hit.id, Hit(id=hit.id, properties=hit.properties))
            into.score += 1.0 / (k + rank)
            into.ranks[name] = rank
            for signal in ("text_similarity", "clip_similarity", "bm25"):
                value = getattr(hit, signal)
                if value is not None:
                    setattr(into, signal, value)
    return sorted(merged.values(), key=lambda h: (-h.score, min(h.ranks.values()), h.id))
