"""`mmrag batch --ray`: the rows answered by a pool of Ray actors, each holding one chain (one copy of the models,
a GPU each when the cluster has them); the driver writes every answer through the local path's `write_records`, so
resuming, `--retry-failed` and the summary are the same.

A group of rows that hits an infrastructure failure (after the local path's one retry) is handed back unanswered,
and the run stops as the local one does: what was answered is saved, and the next run answers the rest.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mmrag.core.console import progress_bar
from mmrag.core.errors import first_line
from mmrag.core.settings import Settings
from mmrag.indexer.ray_index import LOCAL, object_column, pool_size, ray_cluster
from mmrag.rag_app.batch import (
    INFRASTRUCTURE_ERRORS,
    BatchSummary,
    Row,
    answer_with_retry,
    compacted,
    start_run,
    stopped_error,
    write_records,
)


class _ActorStoppedError(Exception):
    """An actor's infrastructure failure, as the driver raises it (the original type stays in the actor)."""


def run_batch_on_ray(
    settings: Settings,
    questions: Path,
    out: Path,
    *,
    address: str = LOCAL,
    actors: int | None = None,
    adapter: str | None = None,
    batch_size: int = 4,
    retrieval_only: bool = False,
    retry_failed: bool = False,
    kinds: tuple[str, ...] = (),
    source_prefix: str | None = None,
    progress: bool = False,
) -> BatchSummary:
    """`run_batch` on Ray (`address` as `ray_cluster` takes it): `batch_size` rows per request to an actor, `actors`
    actors (default: one per GPU, else one)."""
    settings, todo, summary = start_run(settings, questions, out, adapter, None, retry_failed)
    started = time.perf_counter()
    with (
        ray_cluster(address),
        compacted(out, summary),
        out.open("a", encoding="utf-8") as sink,
        progress_bar("answering on Ray", len(todo), show=progress) as bar,
    ):
        left = len(todo)
        for group in _answered(settings, todo, actors, batch_size, retrieval_only, (kinds, source_prefix)):
            if group["stopped"] is not None:
                failure = _ActorStoppedError(group["stopped"])
                raise stopped_error(failure, out, left=left) from failure
            write_records(sink, group["records"], summary)
            left -= len(group["records"])
            bar.advance(len(group["records"]))
    summary.seconds = time.perf_counter() - started
    return summary


def _answered(
    settings: Settings,
    todo: list[Row],
    actors: int | None,
    batch_size: int,
    retrieval_only: bool,
    filters: tuple[tuple[str, ...], str | None],
) -> Any:
    """The answered groups, as the actors finish them: {"records": [...], "stopped": None or why}."""
    import ray.data

    if not todo:
        return iter(())
    size, gpus_each = pool_size(actors)
    groups = [todo[start : start + batch_size] for start in range(0, len(todo), batch_size)]
    return (
        ray.data.from_items([{"group": group} for group in groups])
        .map_batches(
            _Answerer,
            fn_constructor_kwargs={"settings": settings, "retrieval_only": retrieval_only, "filters": filters},
            compute=ray.data.ActorPoolStrategy(size=size),
            num_gpus=gpus_each,
            batch_size=1,
            batch_format="numpy",
        )
        .iter_rows()
    )


class _Answerer:
    """A Ray actor: one chain (its own models and Weaviate client) for every group of rows it is given."""

    def __init__(self, settings: Settings, retrieval_only: bool, filters: tuple[tuple[str, ...], str | None]) -> None:
        from contextlib import ExitStack

        from mmrag.core.client import quick_grpc_retries
        from mmrag.rag_app.service import open_chain

        self._open = ExitStack()  # for the actor's life, as `run_batch` holds them for the run's
        self._open.enter_context(quick_grpc_retries())
        self._chain = self._open.enter_context(open_chain(settings, retrieval_only=retrieval_only))
        self._filters = filters

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        records: list[Any] = []
        stopped: list[str | None] = []
        for group in batch["group"]:
            try:
                records.append(answer_with_retry(self._chain, list(group), *self._filters))
                stopped.append(None)
            except INFRASTRUCTURE_ERRORS as e:
                records.append([])
                stopped.append(" ".join(str(e).split()) or first_line(e))
        return {"records": object_column(records), "stopped": object_column(stopped)}
