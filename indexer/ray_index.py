"""`--ray`: indexing on a Ray cluster, and the cluster itself (one started for the run, or one to connect to).

The decisions are the local path's (`Indexer.plan`, `FileProgress.take`, `Tally`, `Indexer.finish`), so the ids, the
objects and the crash-safety are the same; Ray only changes where the work runs. Files are extracted in Ray Data
tasks (a long PDF's parts in order within its file's task, which decides what each part becomes, as the local loop
does); the parts go to a pool of actors, each holding one copy of the encoders (a GPU each when the cluster has
them) and its own Weaviate client, which embed and write them in batches and hand back the parts' outcomes; the
driver tallies those and, once all is written, deletes replaced and abandoned versions.

Nothing here is imported unless `--ray` is given: ray loads with the first call.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mmrag.core.errors import MmragError, first_line
from mmrag.core.settings import Settings
from mmrag.indexer.extract import ExtractOptions
from mmrag.indexer.items import FileResult
from mmrag.indexer.pipeline import (
    Candidate,
    Describer,
    FileProgress,
    Indexer,
    IndexReport,
    Job,
    PartOutcome,
    Tally,
    extract_job,
)

if TYPE_CHECKING:
    from mmrag.indexer.pipeline import Progress

LOCAL = "local"
"""`--ray local` (or `--ray` with no address): start a Ray of our own on this machine for the run."""

PARTS_PER_BATCH = 16
"""Parts (whole files, or 16 pages of a long PDF) an actor embeds and writes together."""


EXTRACT_CPUS = 1.0
ACTOR_CPUS = 0.5
"""The CPUs Ray reserves for an extraction task and for an embedding actor. They differ on purpose: with equal
requests Ray Data fuses the extraction into the actors, and the files are then read one at a time inside the actor,
between embeddings, instead of in tasks alongside them. The actor asks for less because torch's own threads, not
Ray, use the cores while it embeds."""


class RayUnavailableError(MmragError):
    """The Ray cluster named by --ray cannot be reached (or a local one cannot start)."""


@contextmanager
def ray_cluster(address: str = LOCAL) -> Iterator[None]:
    """Ray for the block: `local` (or "") starts one on this machine (every CPU, loopback only, no dashboard) and
    shuts it down after; `auto`, `ray://host:port` or `host:port` connects to a running cluster. When this process
    is already connected (a test's `ray.init`), that connection is used as it is. Workers' logs stay off the user's
    terminal."""
    import logging

    import ray

    if ray.is_initialized():
        yield
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    if address not in ("", LOCAL):
        _check_reachable(address)
    try:
        if address in ("", LOCAL):
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        else:
            ray.init(address=address, **quiet)
    except Exception as e:  # ConnectionError, a RuntimeError from the GCS client, a ValueError for a bad address
        where = "start a local Ray" if address in ("", LOCAL) else f"reach the Ray cluster at {address}"
        raise RayUnavailableError(f"cannot {where}: {first_line(e)}") from e
    try:
        _quiet_data()
        yield
    finally:
        ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in one line, at once, when a `host:port` (or `ray://host:port`) address does not answer: Ray itself
    retries an unreachable head for a minute, printing its C++ warnings meanwhile."""
    if address == "auto":
        return  # Ray reads the address of the cluster started on this machine, and says at once when there is none
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        raise RayUnavailableError(f"--ray {address!r} is not an address: use local, auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise RayUnavailableError(f"cannot reach the Ray cluster at {address}: {e.strerror or e}") from e


def _quiet_data() -> None:
    """Ray Data reports each stage on stderr: the command shows its own progress instead."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.enable_operator_progress_bars = False


def gpus() -> int:
    """GPUs in the cluster (0 without)."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def pool_size(actors: int | None) -> tuple[int, int]:
    """(actors, GPUs per actor): one per GPU when the cluster has GPUs, else one, unless `actors` is given."""
    n_gpus = gpus()
    return (actors or max(n_gpus, 1)), (1 if n_gpus else 0)


def index_paths_on_ray(
    settings: Settings,
    paths: Sequence[Path],
    *,
    address: str = LOCAL,
    prune: bool = False,
    describer: Describer | None = None,
    progress: bool = False,
    actors: int | None = None,
) -> IndexReport:
    """`index_paths` on Ray: `address` as `ray_cluster` takes it; `actors` embedding actors (default: one per GPU,
    else one). The local Weaviate is started here when it is down, as the local path does."""
    from mmrag.core.client import connect
    from mmrag.core.console import progress_bar
    from mmrag.indexer.embedders import embedders_for
    from mmrag.indexer.ocr import check_setup
    from mmrag.indexer.store import Store

    check_setup(settings.ocr or settings.ocr_images, settings.tesseract, settings.ocr_language)
    clip, text = embedders_for(settings)  # loaded here only for a new collection's vector sizes
    with ray_cluster(address), connect(settings, start_local=True) as client:
        indexer = Indexer(
            Store.from_settings(client, settings), clip, text, options=ExtractOptions.from_settings(settings)
        )
        with progress_bar("indexing on Ray", unit="files", show=progress) as bar:

            def update(done: int, total: int, items: int) -> None:
                elapsed = bar.elapsed
                bar.update(done, total, rate=f"{items / elapsed:.1f} items/s" if elapsed else "")

            return index_on_ray(indexer, settings, paths, prune=prune, progress=update, actors=actors)


def index_on_ray(
    indexer: Indexer,
    settings: Settings,
    paths: Sequence[Path],
    *,
    prune: bool = False,
    progress: Progress | None = None,
    actors: int | None = None,
) -> IndexReport:
    """`Indexer.run` on the connected Ray cluster (see the module's docstring): the same report and objects.

    `indexer` (on this machine) plans and finishes the run; each actor builds its own encoders and Weaviate client
    from `settings`, which must therefore reach the same server from every node (MMRAG_WEAVIATE_URL on a cluster)."""
    import ray.data

    plan = indexer.plan(paths)
    tally = Tally(plan.report)
    files = _by_file(plan.jobs)
    if files:
        size, gpus_each = pool_size(actors)
        parts = ray.data.from_items([{"jobs": jobs} for jobs in files]).map_batches(
            cast(Any, _extract_parts),
            fn_kwargs={"options": plan.options},
            batch_size=1,
            batch_format="numpy",
            num_cpus=EXTRACT_CPUS,
        )
        outcomes = parts.map_batches(
            _EmbedWriter,
            fn_constructor_kwargs={
                "settings": settings,
                "describe": indexer.describe,
                "batch_items": indexer.batch_items,
            },
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=gpus_each,
            num_cpus=ACTOR_CPUS,
            batch_size=PARTS_PER_BATCH,
            batch_format="numpy",
        )
        for row in outcomes.iter_rows():
            outcome: PartOutcome = row["outcome"]
            tally.add(outcome)
            plan.report.written += outcome.objects
            plan.report.items += outcome.objects
            if progress:
                progress(tally.done, len(plan.todo), plan.report.items)
    return indexer.finish(plan, tally, paths, prune)


def _by_file(jobs: list[Job]) -> list[list[Job]]:
    """The jobs grouped by file, in order (a long PDF's parts are consecutive)."""
    files: list[list[Job]] = []
    for job in jobs:
        if files and files[-1][0].candidate.key == job.candidate.key and files[-1][0].sha256 == job.sha256:
            files[-1].append(job)
        else:
            files.append([job])
    return files


@dataclass
class Part:
    """One extracted part on its way to an actor."""

    candidate: Candidate
    result: FileResult
    outcome: PartOutcome


def _extract_parts(batch: dict[str, Any], options: ExtractOptions) -> Iterator[dict[str, Any]]:
    """A Ray Data task: the parts of one file extracted in order, each decided as the local loop decides it, and
    handed on one at a time (a long PDF never sits whole in memory)."""
    for jobs in batch["jobs"]:
        track = FileProgress()
        for job in jobs:
            result = extract_job(job, options)
            outcome = track.take(job, result, options.timeout_s)
            if outcome.write_as is None:
                result.items = []
            yield {"part": object_column([Part(job.candidate, result, outcome)])}


def object_column(values: list[Any]) -> Any:
    """A numpy column of Python objects (numpy would otherwise look inside them)."""
    import numpy as np

    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


class _EmbedWriter:
    """A Ray actor: one copy of the encoders and one Weaviate client, for every batch of parts it is given."""

    def __init__(self, settings: Settings, describe: Describer | None, batch_items: int) -> None:
        from mmrag.core.client import connect
        from mmrag.indexer.embedders import embedders_for
        from mmrag.indexer.store import Store

        clip, text = embedders_for(settings)
        self._client = connect(settings)  # the driver started the local server if it was down
        store = Store.from_settings(self._client, settings)
        self._indexer = Indexer(store, clip, text, batch_items=batch_items, describe=describe)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        parts: list[Part] = list(batch["part"])
        outcomes = self._indexer.write_parts([(p.candidate, p.result, p.outcome) for p in parts])
        return {"outcome": object_column(outcomes)}
