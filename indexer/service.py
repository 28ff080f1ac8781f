"""What the commands and the UI call: index paths, report stats, delete sources, with settings in, results out."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.core.client import connect
from mmrag.core.console import progress_bar
from mmrag.core.settings import Settings
from mmrag.indexer.store import CollectionStats, Store

if TYPE_CHECKING:  # the models (torch) load with index_paths only: stats and deletes start in a fraction of a second
    from mmrag.indexer.embedders import ImageEncoder, TextEncoder
    from mmrag.indexer.pipeline import Describer, IndexReport, Progress


def index_paths(
    settings: Settings,
    paths: Sequence[Path],
    *,
    prune: bool = False,
    workers: int = 1,
    describer: Describer | None = None,
    progress: bool | Progress = False,
    embedders: tuple[ImageEncoder, TextEncoder] | None = None,
) -> IndexReport:
    """Index files and folders into the settings' collection; bad files are reported, not fatal.

    `embedders` lets a long-lived caller (the UI) reuse its loaded models instead of loading them again;
    `describer` (the command layer builds it from the VLM) writes each chart's description into its caption."""
    from mmrag.indexer.embedders import embedders_for
    from mmrag.indexer.extract import ExtractOptions
    from mmrag.indexer.ocr import check_setup
    from mmrag.indexer.pipeline import Indexer

    check_setup(settings.ocr or settings.ocr_images, settings.tesseract, settings.ocr_language)
    clip, text = embedders or embedders_for(settings)
    with connect(settings, start_local=True) as client:
        indexer = Indexer(
            Store.from_settings(client, settings),
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


def collection_stats(settings: Settings) -> CollectionStats:
    """Objects in the settings' collection, in all and by kind, and the models that built it."""
    with connect(settings) as client:
        return Store.from_settings(client, settings).stats()


def delete_collection(settings: Settings) -> int:
    """Delete the settings' collection, schema included (to rebuild it with other models or a new schema)."""
    with connect(settings) as client:
        return Store.from_settings(client, settings).drop()


def delete_source(settings: Settings, source: Path | str) -> int:
    """Delete the objects of a source file, of every file indexed under a folder, or of every file matching an
    absolute glob (`*`, `?`); a path is resolved against the current folder."""
    from mmrag.indexer.store import Store

    pattern = str(source) if str(source).startswith("/") else str(Path(source).expanduser().resolve())
    with connect(settings, start_local=False) as client:
        return Store.from_settings(client, settings).delete_under(pattern)


def list_collections(settings: Settings) -> list[CollectionStats]:
    """Every collection mmrag built on the settings' server, with its objects and models (never starts a server)."""
    from mmrag.indexer.store import list_collections as listed

    with connect(settings, start_local=False) as client:
        return listed(client)


def show_collection(settings: Settings, name: str) -> CollectionStats:
    """One collection's objects (in all and by kind) and models (never starts a server)."""
    from mmrag.indexer.store import Store

    with connect(settings, start_local=False) as client:
        return Store.from_settings(client, settings, name).stats()


def drop_collection(settings: Settings, name: str) -> int:
    """Delete a collection, schema included; how many objects it held (never starts a server)."""
    from mmrag.indexer.store import Store

    with connect(settings, start_local=False) as client:
        return Store.from_settings(client, settings, name).drop()
