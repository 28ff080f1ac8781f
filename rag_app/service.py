"""What the commands and the UI call: search and answer with settings in, dataclasses out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import weaviate

from indexer.embedders import ClipEmbedder, TextEmbedder, embedders_for
from indexer.store import Store
from mmrag.client import connect
from mmrag.models import resolve_models
from mmrag.settings import Settings
from rag_app.chain import Answer, RagChain, check_question
from rag_app.generator import Answerer, Generator
from rag_app.retriever import MultimodalRetriever
from rag_app.search import Searcher
from rag_app.sources import Source, SourceImages


def make_generator(settings: Settings, adapter: str | None = None) -> Generator:
    """The profile's VLM with the adapter (argument, else MMRAG_ADAPTER); it loads on first use."""
    return Generator(
        resolve_models(settings).vlm_model,
        settings.device,
        cache_dir=settings.cache_dir,
        max_new_tokens=settings.max_new_tokens,
        four_bit=settings.four_bit,
        adapter=adapter if adapter is not None else settings.adapter,
    )


def build_chain(
    settings: Settings,
    client: weaviate.WeaviateClient,
    clip: ClipEmbedder,
    text: TextEmbedder,
    generator: Answerer | None,
) -> RagChain:
    """A chain over the settings' collection (checked to exist) on given, possibly long-lived, pieces;
    a None generator means retrieval only."""
    store = Store(client, settings.collection)
    store.require()
    retriever = MultimodalRetriever(searcher=Searcher(store, clip, text), k=settings.k, mode=settings.mode)
    return RagChain(retriever, SourceImages(store), generator, settings.min_text_score, settings.image_threshold)


@contextmanager
def open_chain(
    settings: Settings, *, retrieval_only: bool = False, generator: Generator | None = None
) -> Iterator[RagChain]:
    """A chain over the settings' collection (checked to exist), closed on exit."""
    clip, text = embedders_for(settings)
    with connect(settings) as client:
        if generator is None and not retrieval_only:
            generator = make_generator(settings)
        yield build_chain(settings, client, clip, text, None if retrieval_only else generator)


def ask(settings: Settings, question: str, *, retrieval_only: bool = False, adapter: str | None = None) -> Answer:
    check_question(question)
    generator = None if retrieval_only else make_generator(settings, adapter)
    with open_chain(settings, retrieval_only=retrieval_only, generator=generator) as chain:
        return chain.ask(question)


def search(
    settings: Settings, query: str, *, kinds: Sequence[str] = (), source_prefix: str | None = None
) -> list[Source]:
    """Ranked sources for a query (no relevance threshold, no generation)."""
    check_question(query)
    with open_chain(settings, retrieval_only=True) as chain:
        documents = chain.retriever.invoke(query, kinds=tuple(kinds), source_prefix=source_prefix)
        return [Source.from_document(n, d) for n, d in enumerate(documents, start=1)]
