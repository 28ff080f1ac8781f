"""What the commands and the UI call: search and answer with settings in, dataclasses out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mmrag.core.client import Client, connect
from mmrag.core.errors import ConfigError
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import ImageEncoder, TextEncoder, embedders_for
from mmrag.indexer.store import Store
from mmrag.rag_app.chain import Answer, RagChain, check_question
from mmrag.rag_app.generator import Generator, LocalGenerator
from mmrag.rag_app.retriever import MultimodalRetriever, to_document
from mmrag.rag_app.search import Ranked, Searcher
from mmrag.rag_app.sources import NoImageError, Source, SourceImages


def make_generator(settings: Settings) -> Generator:
    """The settings' backend: the profile's VLM in this process (it loads on first use) or an OpenAI-compatible
    server (MMRAG_GENERATOR_BACKEND=openai); each request names its adapter (`GenerationRequest.adapter`)."""
    if settings.generator_backend == "openai":
        from mmrag.rag_app.served import ServerGenerator

        return ServerGenerator.from_settings(settings)
    return LocalGenerator.from_settings(settings)


def build_chain(
    settings: Settings,
    client: Client,
    clip: ImageEncoder,
    text: TextEncoder,
    generator: Generator | None,
) -> RagChain:
    """A chain over the settings' collection (checked to exist) on given, possibly long-lived, pieces;
    a None generator means retrieval only. The chain answers with MMRAG_ADAPTER, checked here (AdapterError)."""
    if generator is not None and settings.adapter is not None:
        generator.resolve_adapter(settings.adapter)
    store = Store.from_settings(client, settings)
    store.require(current_schema=True)
    retriever = MultimodalRetriever(searcher=Searcher(store, clip, text), k=settings.k, mode=settings.mode)
    return RagChain(
        retriever,
        SourceImages(store),
        generator,
        settings.min_text_score,
        settings.image_threshold,
        adapter=settings.adapter,
    )


def source_images(client: Client, collection: str) -> SourceImages:
    """The pixels of a collection's objects, on a given, possibly long-lived, client (the UI's)."""
    return SourceImages(Store(client, collection))


@contextmanager
def open_chain(
    settings: Settings, *, retrieval_only: bool = False, generator: Generator | None = None
) -> Iterator[RagChain]:
    """A chain over the settings' collection (checked to exist), closed on exit."""
    if not retrieval_only:
        generator = generator or make_generator(settings)
        generator.check()  # a server backend that is down or lacks the model is told before anything else
        if settings.adapter is not None:
            generator.resolve_adapter(settings.adapter)  # a wrong adapter is told before anything connects
    with connect(settings) as client:  # a reader: a local server that is down is an error, never started here
        clip, text = embedders_for(settings)
        yield build_chain(settings, client, clip, text, None if retrieval_only else generator)


def ask(
    settings: Settings,
    question: str,
    *,
    retrieval_only: bool = False,
    adapter: str | None = None,
    kinds: Sequence[str] = (),
    source_prefix: str | None = None,
) -> Answer:
    check_question(question)
    if adapter is not None:
        settings = settings.model_copy(update={"adapter": adapter})
    with open_chain(settings, retrieval_only=retrieval_only) as chain:
        return chain.ask(question, chain.options.replace(kinds=tuple(kinds), source_prefix=source_prefix))


def search(
    settings: Settings, query: str, *, kinds: Sequence[str] = (), source_prefix: str | None = None
) -> list[Source]:
    """Ranked sources for a query (no relevance threshold, no generation)."""
    check_question(query)
    with open_chain(settings, retrieval_only=True) as chain:
        documents = chain.retriever.invoke(query, kinds=tuple(kinds), source_prefix=source_prefix)
        return [Source.from_document(n, d) for n, d in enumerate(documents, start=1)]


@dataclass(frozen=True)
class Picture:
    """An object's picture written to a file."""

    path: Path
    size: tuple[int, int]
    source: Source


def write_picture(settings: Settings, object_id: str, out: Path | None = None) -> Picture:
    """Write the pixels of an indexed object: a figure's or table's crop re-rendered from its PDF page, a page, the
    image file, else the stored thumbnail (`out` defaults to a name made of its file, page and label)."""
    with connect(settings) as client:
        store = Store.from_settings(client, settings)
        store.require(current_schema=True)
        source = Source.from_document(0, to_document(Ranked(store.get(object_id.strip()))))
        image = SourceImages(store).load(source.metadata())
    if image is None:
        raise NoImageError(f"object {source.id} ({source.kind} of {source.source}) has no image")
    path = out if out is not None else Path(source.picture_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    except ValueError as e:  # Pillow knows no format for that suffix
        raise ConfigError(f"cannot write {path}: name it .png or .jpg") from e
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror or e}") from e
    return Picture(path, image.size, source)
