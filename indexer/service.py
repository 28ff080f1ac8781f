"""What the commands and the UI call: index paths, report stats, delete sources, with settings in, results out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmrag.core.client import connect
from mmrag.core.console import progress_bar
from mmrag.core.settings import Settings
from mmrag.indexer.embedders import ClipEmbedder, TextEmbedder, embedders_for
from mmrag.indexer.extract import ExtractOptions
from mmrag.indexer.pipeline import Indexer, IndexReport, Progress
from mmrag.indexer.store import Store


def index_paths(
    settings: Settings,
    paths: Sequence[Path],
    *,
    prune: bool = False,
    workers: int = 1,
    describe: bool = False,
    progress: bool | Progress = False,
    embedders: tuple[ClipEmbedder, TextEmbedder] | None = None,
) -> IndexReport:
    """Index files and folders into the settings' collection; bad files are reported, not fatal.

    `embedders` lets a long-lived caller (the UI) reuse its loaded models instead of loading them again."""
    clip, text = embedders or embedders_for(settings)
    describer = None
    if describe:
        from mmrag.rag_app.describer import describer_for

        describer = describer_for(settings)
    with connect(settings) as client:
        indexer = Indexer(
            Store(client, settings.collection),
            clip,
            text,
            options=ExtractOptions.from_settings(settings),
            workers=workers,
            describe=describer,
        )
        if callable(progress):
            return indexer.run(paths, prune=prune, progress=progress)
        if not progress:
            return indexer.run(paths, prune=prune)
        with _progress_bar() as update:
            return indexer.run(paths, prune=prune, progress=update)


@contextmanager
def _progress_bar() -> Iterator[Callable[[int, int, int], None]]:
    with progress_bar("indexing", unit="files") as bar:

        def update(done: int, total: int, items: int) -> None:
            elapsed = bar.elapsed
            bar.update(done, total, rate=f"{items / elapsed:.1f} items/s" if elapsed else "")

        yield update


def collection_stats(settings: Settings) -> dict[str, Any]:
    with connect(settings) as client:
        return Store(client, settings.collection).stats()


def delete_collection(settings: Settings) -> int:
    """Delete the settings' collection, schema included (to rebuild it with other models or a new schema)."""
    with connect(settings) as client:
        return Store(client, settings.collection).drop()


def delete_source(settings: Settings, source: Path) -> int:
    from weaviate.classes.query import Filter

    path = str(Path(source).expanduser().resolve())
    with connect(settings) as client:
        store = Store(client, settings.collection)
        store.require()
        where = Filter.by_property("source_path").equal(path) | Filter.by_property("source_path").like(
            path.rstrip("/") + "/*"
        )
        return store.delete_where(where)
