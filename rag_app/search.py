"""Search over an indexed collection: three signals, fused by reciprocal rank.

Signals: BM25 over text and captions; the text embedder's vector (`text`); CLIP's vector (`clip`: the question
embedded by CLIP's text tower against image, page and chunk vectors). Modes: `text` = BM25 + text vector,
`image` = CLIP over images and pages, `hybrid` (default) = all three.

Why reciprocal-rank fusion (RRF, k=60) rather than relative-score fusion: the three scores live on unrelated scales
(unbounded BM25, cosine similarities of two different models whose typical ranges differ), and RRF needs no
calibration per model, so swapping CLIP or the text embedder never needs re-tuning. Weaviate's own hybrid query fuses
one vector with BM25 only. The raw cosine similarities are kept on each result for the relevance threshold
(abstention). The queries themselves are the store's (`Store.near_vector`, `Store.bm25`); this module only ranks.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from mmrag.core.errors import ConfigError
from mmrag.indexer.embedders import ImageEncoder, TextEncoder, query_threads
from mmrag.indexer.items import Kind
from mmrag.indexer.store import CLIP_VECTOR, TEXT_VECTOR, Hit, Store, Where

Mode = Literal["image", "text", "hybrid"]
MODES: tuple[Mode, ...] = ("image", "text", "hybrid")
KINDS: tuple[str, ...] = get_args(Kind)
MAX_K = 100
RRF_K = 60
_VISUAL = ("image", "page")
_SIGNALS = {"text": "text_similarity", "clip": "clip_similarity", "bm25": "bm25"}
"""Each signal's list, and the field of `Ranked` that keeps its raw score."""
_T = TypeVar("_T")


class UnknownOptionError(ConfigError, TypeError):
    """A retrieval option that does not exist (a misspelt keyword); also a TypeError, as Python's own is."""


@dataclass(frozen=True)
class SearchOptions:
    """What one search retrieves; every field is checked when the options are made."""

    k: int = 4
    """How many results (1 to 100)."""
    mode: Mode = "hybrid"
    """Which signals rank: `text` (BM25 + text vector), `image` (CLIP over images and pages), `hybrid` (all three)."""
    kinds: tuple[str, ...] = ()
    """Only objects of these kinds (image, page, text, table); none: all."""
    source_prefix: str | None = None
    """Only objects whose source (or, when absolute, source path) starts with this."""

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise ConfigError(f"k must be a whole number from 1 to {MAX_K}, got {self.k!r}")
        if self.mode not in MODES:
            raise ConfigError(f"unknown retrieval mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if isinstance(self.kinds, str):
            raise ConfigError(f"kinds must be a list of kinds, got the string {self.kinds!r}")
        object.__setattr__(self, "kinds", tuple(self.kinds))  # a list is welcome; the options stay hashable
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ConfigError(f"unknown kind {unknown[0]!r}: choose from {', '.join(KINDS)}")

    def replace(self, **changes: Any) -> SearchOptions:
        """These options with some fields changed; a name that is not an option is an UnknownOptionError."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = [name for name in changes if name not in names]
        if unknown:
            raise UnknownOptionError(f"unknown retrieval option {unknown[0]!r}: the options are {', '.join(names)}")
        return dataclasses.replace(self, **changes)


@dataclass
class Ranked:
    """One search result: the object, its fused score, its rank in each signal's list and each signal's raw score
    (None for a signal that did not find it)."""

    hit: Hit
    score: float = 0.0
    text_similarity: float | None = None
    clip_similarity: float | None = None
    bm25: float | None = None
    ranks: dict[str, int] = field(default_factory=dict)


class Searcher:
    """Embeds the query once per signal and asks the store; cheap to build, models load on first search.

    The two encoders run at once (CLIP's in a pool thread: torch releases the GIL), each on one torch thread
    (`query_threads`), and each query goes to the store as soon as its vector is ready; `concurrent=False` encodes
    one after the other (for comparison)."""

    def __init__(
        self, store: Store, clip: ImageEncoder, text: TextEncoder, candidates: int = 20, *, concurrent: bool = True
    ) -> None:
        self.store = store
        self.clip = clip
        self.text = text
        self.candidates = candidates
        self.concurrent = concurrent
        self._pool: ThreadPoolExecutor | None = None

    def search(self, query: str, options: SearchOptions) -> list[Ranked]:
        """The `options.k` best objects for `query`, best first."""
        limit = max(options.k, self.candidates)
        where = Where(kinds=options.kinds, source_prefix=options.source_prefix)
        # The (up to three) queries run concurrently: latency is the slowest one, not their sum.
        futures: dict[str, Future[list[Hit]]] = {}
        with query_threads():
            clip_vector: Future[list[float]] | None = None
            visual = clip_kinds(options) if options.mode in ("image", "hybrid") else None
            if visual is not None:
                clip_where = dataclasses.replace(where, kinds=visual)
                clip_vector = self._submit(_vector, self.clip, query)
                if not self.concurrent:
                    clip_vector.result()
            if options.mode in ("text", "hybrid"):
                futures["bm25"] = self._submit(self.store.bm25, query, limit, where)
                vector = _vector(self.text, query)
                futures["text"] = self._submit(self.store.near_vector, vector, TEXT_VECTOR, limit, where)
            if clip_vector is not None:
                vector = clip_vector.result()
                futures["clip"] = self._submit(self.store.near_vector, vector, CLIP_VECTOR, limit, clip_where)
        return fuse({name: futures[name].result() for name in ("text", "bm25", "clip") if name in futures})[: options.k]

    def _submit(self, work: Callable[..., _T], *args: Any) -> Future[_T]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mmrag-search")
        return self._pool.submit(work, *args)


_ENCODING = threading.BoundedSemaphore(max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1))
"""Question encodings running at once in this process, at most one per core: each runs on one torch thread, and
more than the cores (a REST server's concurrent searches) only thrash them (bench/api.py at 16 clients)."""


def _vector(encoder: TextEncoder, query: str) -> list[float]:
    with _ENCODING:
        return encoder.encode_texts([query])[0].tolist()


def clip_kinds(options: SearchOptions) -> tuple[str, ...] | None:
    """The kinds CLIP's query may return: only images and pages (of the asked kinds, if any); None when the asked
    kinds leave it nothing. CLIP is the cross-modal signal: were text chunks and tables in its list too, their CLIP
    text vectors (closer to a question than any picture is) would give text a third vote over every figure."""
    if not options.kinds:
        return _VISUAL
    visual = tuple(kind for kind in options.kinds if kind in _VISUAL)
    return visual or None


def fuse(lists: dict[str, list[Hit]], k: int = RRF_K) -> list[Ranked]:
    """Reciprocal-rank fusion: score = sum over lists of 1 / (k + rank); each list's raw score is kept per id
    (`text`: text similarity, `clip`: CLIP similarity, `bm25`: BM25 score)."""
    merged: dict[str, Ranked] = {}
    for name, hits in lists.items():
        for rank, hit in enumerate(hits, start=1):
            into = merged.setdefault(hit.id, Ranked(hit))
            into.score += 1.0 / (k + rank)
            into.ranks[name] = rank
            if name in _SIGNALS and hit.score is not None:
                setattr(into, _SIGNALS[name], hit.score)
    return sorted(merged.values(), key=lambda r: (-r.score, min(r.ranks.values()), r.hit.id))
